package cmd

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestREADMEListsEverySetting keeps README.md's "Configuration" table and
// the settings table together: every key is listed with its etcdctl
// variable and its CLAIMCTL_* variable where that is not derived from the
// key, and the table names no key that does not exist.
func TestREADMEListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no '## Configuration' section")
	}
	section, _, _ = strings.Cut(section, "\n\n"+"The config file")
	rows := map[string]string{} // key -> its row
	var listed []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range regexp.MustCompile("`([a-z-]+)`").FindAllStringSubmatch(first, -1) {
			rows[m[1]] = line
			listed = append(listed, m[1])
		}
	}
	for _, s := range settings {
		row, ok := rows[s.key]
		if !ok {
			t.Errorf("README.md's configuration table has no row for %q", s.key)
			continue
		}
		for _, v := range []string{s.etcdctl, s.env} {
			if v != "" && !strings.Contains(row, v) {
				t.Errorf("README.md's row for %q does not name %s:\n%s", s.key, v, row)
			}
		}
	}
	for _, k := range listed {
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.key == k }) {
			t.Errorf("README.md's configuration table lists %q, which is not a setting", k)
		}
	}
}

// TestSettingsTable: every row can be a flag and loads its own default, so
// that a row added with a mistake fails here rather than for a user.
func TestSettingsTable(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	for _, s := range settings {
		if (s.text == nil) == (s.load == nil) {
			t.Errorf("setting %s: give exactly one of text and load", s.key)
			continue
		}
		addFlag(fs, s.key)
		var cfg Config
		if err := s.decode(&cfg, s.def); err != nil {
			t.Errorf("setting %s: its default %v does not load: %v", s.key, s.def, err)
		}
		if s.text == nil && s.show == nil {
			t.Errorf("setting %s: no show, so doctor would display nothing", s.key)
		}
	}
	if fs.Lookup("ttl") == nil || fs.Lookup("ttl").DefValue != "1m0s" {
		t.Errorf("--ttl from the table: %+v", fs.Lookup("ttl"))
	}
}
