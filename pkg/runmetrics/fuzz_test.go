package runmetrics_test

import (
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// FuzzFileFor checks the naming rule for any claim name: the file is in the
// directory, named claimctl_<escaped>.prom with only safe bytes, short enough
// for any file system, and the escaped part turns back into the name unless
// it had to be cut.
func FuzzFileFor(f *testing.F) {
	for _, s := range []string{"nightly", "a/b", "a%2Fb", "with space", "ünï", "..", "", "~", strings.Repeat("é", 150)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, claim string) {
		file := runmetrics.FileFor("/textfile/", claim)
		dir, base := filepath.Split(file)
		if dir != "/textfile/" {
			t.Fatalf("FileFor(%q) = %q: not in the directory", claim, file)
		}
		name, ok := strings.CutPrefix(base, "claimctl_")
		name, ok2 := strings.CutSuffix(name, ".prom")
		if !ok || !ok2 || len(base)+10 > 255 {
			t.Fatalf("FileFor(%q) = %q", claim, file)
		}
		for _, c := range []byte(name) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-%~", c) >= 0) {
				t.Fatalf("FileFor(%q) = %q has byte %q", claim, file, c)
			}
		}
		if strings.Contains(name, "~") {
			return // cut, and ends in a hash
		}
		if back, err := url.PathUnescape(name); err != nil || back != claim {
			t.Fatalf("FileFor(%q) = %q unescapes to %q, %v", claim, file, back, err)
		}
	})
}

// FuzzPreviousFile checks that whatever the file being replaced holds, Write
// still writes a whole, valid file, with a last success that is a time.
func FuzzPreviousFile(f *testing.F) {
	f.Add([]byte("claimctl_last_success_timestamp_seconds{claim=\"nightly\"} 1.7e+09\n"))
	f.Add([]byte("# TYPE claimctl_last_success_timestamp_seconds counter\nclaimctl_last_success_timestamp_seconds{claim=\"nightly\"} 5\n"))
	f.Add([]byte("claimctl_last_success_timestamp_seconds{claim=\"nightly\"} +Inf\n"))
	f.Add([]byte("{\x00"))
	f.Fuzz(func(t *testing.T, previous []byte) {
		dir := t.TempDir()
		file := runmetrics.FileFor(dir, "nightly")
		if err := os.WriteFile(file, previous, 0o644); err != nil {
			t.Fatal(err)
		}
		fams := write(t, dir, runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Skipped, Started: t0, Ended: t0})
		v, ok := fams["claimctl_last_success_timestamp_seconds"]["nightly"]
		if !ok || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("last success %v (present %v) after a previous file %q", v, ok, previous)
		}
	})
}
