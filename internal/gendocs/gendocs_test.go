package gendocs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/claimctl/claimctl/cmd"
)

// repoRoot is where the committed files are, seen from this package.
const repoRoot = "../.."

// asClaimctlEnv makes the test binary act as claimctl, so that the
// completion script has a claimctl to call for its candidates.
const asClaimctlEnv = "GENDOCS_TEST_AS_CLAIMCTL"

func TestMain(m *testing.M) {
	if os.Getenv(asClaimctlEnv) == "1" {
		os.Exit(cmd.Main(cmd.BuildInfo{Version: "dev"}, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestGeneratedFilesUpToDate regenerates everything into a temporary
// directory and compares it with what is committed.
func TestGeneratedFilesUpToDate(t *testing.T) {
	tmp := t.TempDir()
	if err := Generate(tmp); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{completionsDir, manDir} {
		fresh := listFiles(t, filepath.Join(tmp, sub))
		if len(fresh) == 0 {
			t.Fatalf("gendocs wrote nothing to %s", sub)
		}
		for _, name := range fresh {
			rel := sub + "/" + name
			want, err := os.ReadFile(filepath.Join(tmp, sub, name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(repoRoot, sub, name))
			switch {
			case os.IsNotExist(err):
				t.Errorf("%s is missing: run go generate ./...", rel)
			case err != nil:
				t.Error(err)
			case !bytes.Equal(got, want):
				t.Errorf("%s is out of date: run go generate ./...", rel)
			}
		}
		if sub != manDir { // gendocs removes stale man pages, nothing else
			continue
		}
		for _, name := range listFiles(t, filepath.Join(repoRoot, sub)) {
			if filepath.Ext(name) == ".1" && !slices.Contains(fresh, name) {
				t.Errorf("%s/%s belongs to no command any more: run go generate ./...", sub, name)
			}
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names
}

// completeScript sources the committed bash completion script the way a
// login shell would (after bash-completion, when it is installed), then
// simulates a TAB at the end of $LINE: it sets the COMP_* variables bash
// sets, calls the function registered with `complete -F` for claimctl, and
// prints COMPREPLY one entry a line.
const completeScript = `
if [ -n "$BASH_COMPLETION_FILE" ]; then
	. "$BASH_COMPLETION_FILE"
else
	# Without the bash-completion package, provide the one function of it
	# that the script needs, for the simple command lines used here.
	_get_comp_words_by_ref() {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	}
fi
. "$COMPLETION_SCRIPT" || exit 1
spec=$(complete -p claimctl) || exit 1
fn=${spec##*-F }
fn=${fn%% *}
COMP_LINE=$LINE
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_TYPE=9 # TAB
COMP_KEY=9
COLUMNS=200
COMPREPLY=()
"$fn" claimctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`

// bashCompletionFiles are where bash-completion's main script lives on
// Debian, Fedora, FreeBSD and Homebrew.
var bashCompletionFiles = []string{
	"/usr/share/bash-completion/bash_completion",
	"/usr/local/share/bash-completion/bash_completion",
	"/opt/homebrew/share/bash-completion/bash_completion",
	"/etc/bash_completion",
}

// TestBashCompletion runs the committed completions/claimctl.bash in a real
// bash against this test binary standing in for claimctl.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed; the bash completion script is not exercised")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the test binary cannot stand in for claimctl through a symlink on Windows")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "claimctl")); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, completionsDir, "claimctl.bash"))
	if err != nil {
		t.Fatal(err)
	}
	bashCompletion := ""
	for _, f := range bashCompletionFiles {
		if _, err := os.Stat(f); err == nil {
			bashCompletion = f
			break
		}
	}
	if bashCompletion == "" {
		t.Log("bash-completion is not installed: the script's fallback is tested with a minimal _get_comp_words_by_ref")
	}

	complete := func(t *testing.T, line string) []string {
		t.Helper()
		c := exec.Command(bash, "--norc", "--noprofile", "-c", completeScript)
		c.Env = append(os.Environ(),
			"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			asClaimctlEnv+"=1",
			"COMPLETION_SCRIPT="+script,
			"BASH_COMPLETION_FILE="+bashCompletion,
			"LINE="+line,
		)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			t.Fatalf("completing %q: %v\nstderr:\n%s", line, err, stderr.String())
		}
		// With several candidates the script appends "  (description)".
		var words []string
		for l := range strings.Lines(string(out)) {
			if fields := strings.Fields(l); len(fields) > 0 {
				words = append(words, fields[0])
			}
		}
		return words
	}

	t.Run("command", func(t *testing.T) {
		if got := complete(t, "claimctl ac"); !slices.Equal(got, []string{"acquire"}) {
			t.Errorf("claimctl ac<TAB> offers %q, want [acquire]", got)
		}
	})
	t.Run("flag", func(t *testing.T) {
		got := complete(t, "claimctl acquire --no")
		for _, want := range []string{"--nonblock", "--note"} {
			if !slices.Contains(got, want) {
				t.Errorf("claimctl acquire --no<TAB> offers %q, want it to include %s", got, want)
			}
		}
	})
}
