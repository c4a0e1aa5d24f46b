//go:build linux

package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestStartErrors is not parallel: it writes an executable file, and a fork
// elsewhere in the process while that file is open for writing would make
// its execve fail with ETXTBSY.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{bin, filepath.Join(dir, "adir"), filepath.Join(bin, "dironly")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "noexec"), []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "badformat"), []byte("not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/true", filepath.Join(bin, "mytrue")); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + bin

	tests := []struct {
		name    string
		spec    Spec
		want    error // ErrNotFound or ErrNotExecutable
		errno   syscall.Errno
		tried   string // StartError.Path
		message []string
	}{
		{
			name: "not in PATH", spec: Spec{Path: "no-such-command", Env: []string{path}},
			want: ErrNotFound, errno: syscall.ENOENT,
			message: []string{"no-such-command", "not found in PATH"},
		},
		{
			name: "PATH of the child, not ours", spec: Spec{Path: "sh", Env: []string{path}},
			want: ErrNotFound, errno: syscall.ENOENT,
			message: []string{"sh", "not found in PATH"},
		},
		{
			name: "no PATH at all", spec: Spec{Path: "sh", Env: []string{}},
			want: ErrNotFound, errno: syscall.ENOENT,
		},
		{
			name: "directory in PATH is skipped", spec: Spec{Path: "dironly", Env: []string{path}},
			want: ErrNotFound, errno: syscall.ENOENT,
		},
		{
			name: "absolute path missing", spec: Spec{Path: filepath.Join(dir, "missing")},
			want: ErrNotFound, errno: syscall.ENOENT, tried: filepath.Join(dir, "missing"),
			message: []string{filepath.Join(dir, "missing"), "not found"},
		},
		{
			name: "path through a file", spec: Spec{Path: filepath.Join(bin, "noexec", "x")},
			want: ErrNotFound, errno: syscall.ENOTDIR, tried: filepath.Join(bin, "noexec", "x"),
		},
		{
			name: "relative PATH entry is not searched", spec: Spec{Path: "mytrue", Dir: dir, Env: []string{"PATH=bin"}},
			want: ErrNotFound, errno: syscall.ENOENT,
			message: []string{"mytrue", "relative PATH entry", "./bin/mytrue"},
		},
		{
			name: "no execute permission", spec: Spec{Path: filepath.Join(bin, "noexec")},
			want: ErrNotExecutable, errno: syscall.EACCES, tried: filepath.Join(bin, "noexec"),
			message: []string{filepath.Join(bin, "noexec"), "cannot execute", "permission denied"},
		},
		{
			name: "no execute permission, through PATH", spec: Spec{Path: "noexec", Env: []string{path}},
			want: ErrNotExecutable, errno: syscall.EACCES, tried: filepath.Join(bin, "noexec"),
			message: []string{"start noexec", filepath.Join(bin, "noexec"), "permission denied"},
		},
		{
			name: "directory", spec: Spec{Path: filepath.Join(dir, "adir")},
			want: ErrNotExecutable, errno: syscall.EISDIR, tried: filepath.Join(dir, "adir"),
			message: []string{"is a directory"},
		},
		{
			name: "bad format", spec: Spec{Path: filepath.Join(bin, "badformat")},
			want: ErrNotExecutable, errno: syscall.ENOEXEC, tried: filepath.Join(bin, "badformat"),
			message: []string{"badformat", "exec format error"},
		},
		{
			name: "bad format, through PATH", spec: Spec{Path: "badformat", Env: []string{path}},
			want: ErrNotExecutable, errno: syscall.ENOEXEC, tried: filepath.Join(bin, "badformat"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Start(tt.spec)
			if err == nil {
				c.Close()
				t.Fatalf("Start(%q) succeeded, want %v", tt.spec.Path, tt.want)
			}
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("error %q is a %T, want *StartError", err, err)
			}
			wantCode := map[error]int{ErrNotFound: 127, ErrNotExecutable: 126}[tt.want]
			if !errors.Is(err, tt.want) || se.Code != wantCode || !errors.Is(err, tt.errno) {
				t.Errorf("error %q: code %d, errors.Is(%v) %v, errors.Is(%v) %v; want code %d and both true",
					err, se.Code, tt.want, errors.Is(err, tt.want), tt.errno, errors.Is(err, tt.errno), wantCode)
			}
			other := map[error]error{ErrNotFound: ErrNotExecutable, ErrNotExecutable: ErrNotFound}[tt.want]
			if errors.Is(err, other) {
				t.Errorf("error %q also matches %v", err, other)
			}
			if se.Command != tt.spec.Path || se.Path != tt.tried {
				t.Errorf("Command %q, Path %q; want %q, %q", se.Command, se.Path, tt.spec.Path, tt.tried)
			}
			for _, m := range append(tt.message, tt.spec.Path) {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not mention %q", err, m)
				}
			}
		})
	}

	// And the same file through PATH when it is usable.
	c, err := Start(Spec{Path: "mytrue", Env: []string{path}})
	if err != nil {
		t.Fatalf("Start(mytrue) through the child's PATH: %v", err)
	}
	if s := finish(t, c); s != (Status{}) {
		t.Errorf("mytrue: %v, want exit 0", s)
	}
}

func TestLookPathPrefersLaterExecutable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{first, second} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(first, "cmd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/true", filepath.Join(second, "cmd")); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/nonexistent", "PATH=" + first + ":" + second} // the last one counts
	got, err := lookPath("cmd", "", env)
	if want := filepath.Join(second, "cmd"); err != nil || got != want {
		t.Errorf("lookPath = %q, %v; want %q (skip the non-executable match, as a shell does)", got, err, want)
	}
}
