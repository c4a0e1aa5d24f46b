package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// checkOutput validates -o against the modes a command supports.
func checkOutput(output string, modes ...string) error {
	if !slices.Contains(modes, output) {
		return usageError("invalid --output %q: use %s", output, strings.Join(modes, ", "))
	}
	return nil
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeEnv writes NAME=value lines for `eval`, quoting values only when the
// shell needs it, so that the output also works in $GITHUB_ENV files.
func writeEnv(w io.Writer, vars [][2]string) error {
	var b strings.Builder
	for _, kv := range vars {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], shellQuote(kv[1]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/:@%+=,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// exactArgs checks that a command has n arguments, named by names
// ("NAME"), and reports a usage error that names them otherwise. claimctl
// checks every command's arity itself (exactArgs, maxArgs, noArgs), so that
// a wrong number of arguments is a usage error by type, never by matching
// Cobra's messages.
func exactArgs(n int, names string) cobra.PositionalArgs { return argsBetween(n, n, names) }

// maxArgs checks that a command has at most n arguments, named by names
// ("[TOKEN]").
func maxArgs(n int, names string) cobra.PositionalArgs { return argsBetween(0, n, names) }

// noArgs checks that a command has no arguments.
func noArgs() cobra.PositionalArgs { return argsBetween(0, 0, "no arguments") }

func argsBetween(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return &flagError{fmt.Errorf("%s takes %s (got %d argument%s)", commandName(cmd), names, len(args), plural(len(args)))}
		}
		return nil
	}
}

// commandName is cmd's path below the root: "acquire", "completion bash".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
