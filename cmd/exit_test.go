package cmd

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestREADMEExitCodesMatchTable keeps README.md's "Exit codes" table equal
// to ExitCodes, from which help and the man page are made.
func TestREADMEExitCodesMatchTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Exit codes\n")
	if !ok {
		t.Fatal("README.md has no '## Exit codes' section")
	}
	var table strings.Builder
	for line := range strings.Lines(section) {
		if strings.HasPrefix(line, "|") {
			table.WriteString(line)
		} else if table.Len() > 0 {
			break
		}
	}
	if got, want := table.String(), ExitCodesMarkdown(); got != want {
		t.Errorf("README.md's exit-code table differs from cmd.ExitCodes; replace it with:\n%s\ngot:\n%s", want, got)
	}
}

// TestExitCodesTableListsEveryCode checks that every exit-code constant has
// a row, and so have 126 and 127, which supervise.StartError carries.
func TestExitCodesTableListsEveryCode(t *testing.T) {
	rows := map[string]bool{}
	for _, e := range ExitCodes {
		for _, c := range strings.Split(e.Code, ", ") {
			rows[c] = true
		}
	}
	for _, code := range []int{ExitOK, ExitError, ExitUsage, ExitBadToken, ExitUnavailable, ExitBusy, ExitNotHeld, ExitPermission, ExitConfig, ExitTimeout, 126, 127} {
		if !rows[strconv.Itoa(code)] {
			t.Errorf("exit code %d has no row in ExitCodes", code)
		}
	}
}

// TestExitCodesTextFitsTerminal checks the help rendering: one line per
// code at least, no Markdown, nothing wider than 80 columns.
func TestExitCodesTextFitsTerminal(t *testing.T) {
	text := exitCodesText(78)
	if strings.Contains(text, "`") {
		t.Errorf("help text keeps Markdown backquotes:\n%s", text)
	}
	for line := range strings.Lines(text) {
		if len(strings.TrimRight(line, "\n")) > 80 {
			t.Errorf("line wider than 80 columns: %q", line)
		}
	}
	for _, e := range ExitCodes {
		if !strings.Contains(text, "    "+e.Code+" ") {
			t.Errorf("code %s missing from the help text:\n%s", e.Code, text)
		}
	}
}
