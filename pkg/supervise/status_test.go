package supervise

import (
	"syscall"
	"testing"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		s    Status
		code int
		str  string
	}{
		{Status{}, 0, "exited with code 0"},
		{Status{Code: 3}, 3, "exited with code 3"},
		{Status{Signal: syscall.SIGTERM}, 143, "killed by signal TERM"},
		{Status{Signal: syscall.SIGKILL}, 137, "killed by signal KILL"},
		{Status{Signal: syscall.Signal(40)}, 168, "killed by signal 40"},
		{Status{Code: -1}, -1, "exit status unknown"},
	}
	for _, tt := range tests {
		if got := tt.s.ExitCode(); got != tt.code {
			t.Errorf("%+v.ExitCode() = %d, want %d", tt.s, got, tt.code)
		}
		if got := tt.s.String(); got != tt.str {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.str)
		}
	}
}
