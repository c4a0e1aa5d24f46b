package cmd

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// VersionOptions are the inputs of `claimctl version`.
type VersionOptions struct {
	f      *Factory
	Output string
}

// NewCmdVersion builds `claimctl version`. runF replaces the run function in
// tests of flag parsing.
func NewCmdVersion(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{f: f}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Args:  noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return versionRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	return cmd
}

func versionRun(opts *VersionOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	b := resolveBuild(f.Build)
	if opts.Output == "json" {
		return writeJSON(f.IO.Out, struct {
			Version string `json:"version"`
			Commit  string `json:"commit"`
			Date    string `json:"date"`
			Go      string `json:"go"`
			OS      string `json:"os"`
			Arch    string `json:"arch"`
		}{b.Version, b.Commit, b.Date, runtime.Version(), runtime.GOOS, runtime.GOARCH})
	}
	_, err := fmt.Fprintln(f.IO.Out, versionText(f.Build))
	return err
}

// resolveBuild fills in what ldflags did not stamp from the module's build
// information, so `go install` builds report a useful version too.
func resolveBuild(b BuildInfo) BuildInfo {
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" || b.Version == "dev" {
			if v := info.Main.Version; v != "" && v != "(devel)" {
				b.Version = v
			}
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func versionText(b BuildInfo) string {
	b = resolveBuild(b)
	return fmt.Sprintf("claimctl %s (commit %s, built %s, %s %s/%s)", b.Version, b.Commit, b.Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
