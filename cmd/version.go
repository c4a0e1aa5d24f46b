package cmd

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// NewCmdVersion builds `claimctl version`.
func NewCmdVersion(f *Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Args:  noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			b := resolveBuild(f.Build)
			if output == "json" {
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
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output: text or json")
	return cmd
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
