//go:build linux

package supervise

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want Identity
	}{
		{"42:1000", true, Identity{PID: 42, Start: 1000}},
		{"42", false, Identity{}},
		{"0:1", false, Identity{}},
		{"-3:1", false, Identity{}},
		{"42:x", false, Identity{}},
		{"042:1", false, Identity{}}, // not canonical
		{"42:01", false, Identity{}},
	} {
		got, err := ParseIdentity(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseIdentity(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

// A process is never covered by itself, by a process that is not its
// ancestor, or by its parent under another start time (a reused pid).
func TestCoversRefusesWhatIsNotAnAncestorRun(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Covers(); err == nil {
		t.Error("a process covers itself")
	}
	parent, err := readProcStat(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	reused := Identity{PID: os.Getppid(), Start: parent.start + 1}
	if err := reused.Covers(); err == nil || !strings.Contains(err.Error(), "not an ancestor") {
		t.Errorf("a parent with another start time covers: %v", err)
	}
	// The real parent (go test) started this process in its own group, so
	// this process did not come through a command group of the parent's.
	real := Identity{PID: os.Getppid(), Start: parent.start}
	if err := real.Covers(); err == nil {
		t.Error("the test's parent, which is no run, covers it")
	} else if !errors.Is(err, ErrOtherGroup) && !strings.Contains(err.Error(), "session") {
		t.Logf("not covered: %v", err)
	}
}
