package claim

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// suggestion finds the TTL that ValidateTTL's message proposes.
var suggestion = regexp.MustCompile(`e\.g\. --ttl (\S+)$`)

// FuzzValidateTTL: ValidateTTL accepts exactly the positive whole-second
// TTLs up to MaxTTL, every refusal wraps ErrInvalidTTL in one line, and a
// TTL that is refused for its sub-second part comes with a suggestion that
// is itself valid and not shorter than what was asked for.
func FuzzValidateTTL(f *testing.F) {
	for _, d := range []time.Duration{0, -1, 1, time.Second, 1500 * time.Millisecond, 500 * time.Millisecond, MaxTTL, MaxTTL + 1,
		MaxTTL + time.Second, -MaxTTL, 1<<63 - 1, -1 << 63, 150*time.Second + 500*time.Millisecond} {
		f.Add(int64(d))
	}
	f.Fuzz(func(t *testing.T, n int64) {
		ttl := time.Duration(n)
		err := ValidateTTL(ttl)
		valid := ttl > 0 && ttl <= MaxTTL && ttl%time.Second == 0
		if (err == nil) != valid {
			t.Fatalf("ValidateTTL(%v) = %v; valid = %v", ttl, err, valid)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, ErrInvalidTTL) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("ValidateTTL(%v) = %q; want a one-line error wrapping ErrInvalidTTL", ttl, err)
		}
		if m := suggestion.FindStringSubmatch(err.Error()); m != nil && ttl > 0 && ttl <= MaxTTL {
			s, perr := time.ParseDuration(m[1])
			if perr != nil || ValidateTTL(s) != nil || s < ttl || s-ttl >= time.Second {
				t.Fatalf("ValidateTTL(%v) suggests --ttl %s, which is not the next whole second up", ttl, m[1])
			}
		}
	})
}

// FuzzKeyspaceParse: Parse never panics on any key under any prefix, and
// what it accepts maps back: the name is valid, and the key lies in the
// claim's own range.
func FuzzKeyspaceParse(f *testing.F) {
	for _, s := range [][2]string{{"claimctl/", "claimctl/deploy/694d7b4a1f2c0003"}, {"claimctl/", "claimctl/a%2Fb/1"},
		{"claimctl/", "claimctl/a/b/1"}, {"claimctl/", "claimctl//1"}, {"p/", "p/x/notalease"}, {"p", "p/x/1"}, {"", "x/1"},
		{"claimctl/", "claimctl/%zz/1"}, {"claimctl/", "other/deploy/1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		ks, err := NewKeyspace(prefix)
		if err != nil {
			if !errors.Is(err, ErrInvalidPrefix) {
				t.Fatalf("NewKeyspace(%q) = %v, want ErrInvalidPrefix", prefix, err)
			}
			return
		}
		name, _, ok := ks.Parse(key)
		if !ok {
			return
		}
		if ValidateName(name) != nil {
			t.Fatalf("Parse(%q) under %q accepted the invalid name %q", key, prefix, name)
		}
		if !strings.HasPrefix(key, ks.ClaimPrefix(name)) {
			t.Fatalf("Parse(%q) under %q = %q, whose range %q does not hold the key", key, prefix, name, ks.ClaimPrefix(name))
		}
	})
}
