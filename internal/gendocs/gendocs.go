// Package gendocs writes claimctl's shell completion scripts and man pages,
// which are committed so that archives and packages ship them. gen.go runs
// it from the repository root through `go generate ./...` (see generate.go
// there) whenever the command tree changes; its test fails while the
// committed files are out of date.
package gendocs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/claimctl/claimctl/cmd"
	"github.com/claimctl/claimctl/pkg/iostreams"
)

// The generated files, relative to the output directory.
const (
	completionsDir = "completions"
	manDir         = "man/man1"
)

// rootCmd builds claimctl's command tree as the binary does, plus what Cobra
// adds only when a command runs: the completion command and --version.
// Version "dev" is what an unstamped build reports; only its presence shows.
func rootCmd() *cobra.Command {
	f := &cmd.Factory{IO: iostreams.System(), Getenv: os.Getenv, Build: cmd.BuildInfo{Version: "dev"}}
	root := cmd.NewRootCmd(f)
	root.InitDefaultCompletionCmd()
	root.InitDefaultVersionFlag()
	return root
}

// Generate writes every completion script and man page under dir. Man pages
// of commands that no longer exist are removed.
func Generate(dir string) error {
	compDir := filepath.Join(dir, completionsDir)
	if err := os.MkdirAll(compDir, 0o755); err != nil {
		return err
	}
	scripts := []struct {
		file string
		gen  func(*cobra.Command, io.Writer) error
	}{
		{"claimctl.bash", func(c *cobra.Command, w io.Writer) error { return c.GenBashCompletionV2(w, true) }},
		{"claimctl.zsh", (*cobra.Command).GenZshCompletion},
		{"claimctl.fish", func(c *cobra.Command, w io.Writer) error { return c.GenFishCompletion(w, true) }},
		{"claimctl.ps1", (*cobra.Command).GenPowerShellCompletionWithDesc},
	}
	for _, s := range scripts {
		var buf bytes.Buffer
		if err := s.gen(rootCmd(), &buf); err != nil {
			return fmt.Errorf("%s: %w", s.file, err)
		}
		if err := os.WriteFile(filepath.Join(compDir, s.file), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}

	mDir := filepath.Join(dir, manDir)
	if err := os.MkdirAll(mDir, 0o755); err != nil {
		return err
	}
	stale, err := filepath.Glob(filepath.Join(mDir, "*.1"))
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	root := rootCmd()
	disableAutoGenTag(root)
	// The date in every page's header is fixed, so that regenerating an
	// unchanged command tree changes no file; move it forward when the
	// pages change in substance.
	date := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	header := &doc.GenManHeader{Section: "1", Date: &date, Source: "claimctl", Manual: "claimctl Manual"}
	if err := doc.GenManTree(root, header, mDir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	// GenManTree skips help topics (commands with only help text, such as
	// exit-codes); they get a page each too.
	for _, c := range root.Commands() {
		if !c.IsAdditionalHelpTopicCommand() {
			continue
		}
		var buf bytes.Buffer
		if err := doc.GenMan(c, header, &buf); err != nil {
			return fmt.Errorf("man page for %s: %w", c.CommandPath(), err)
		}
		page := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		if err := os.WriteFile(filepath.Join(mDir, page), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// disableAutoGenTag drops Cobra's "Auto generated" history line from every
// page; the header already carries the date.
func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGenTag(sub)
	}
}
