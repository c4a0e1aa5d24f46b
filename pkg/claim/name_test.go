package claim

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateName(t *testing.T) {
	good := []string{"deploy", "backup/db", "a", "x:y@z", "ünïcode", "100%", strings.Repeat("n", MaxNameLen)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := map[string]string{
		"":                                "empty",
		"has space":                       "a space",
		"tab\there":                       "whitespace",
		"nl\n":                            "whitespace",
		"bell\a":                          "control character",
		"\xff\xfe":                        "not valid UTF-8",
		strings.Repeat("n", MaxNameLen+1): "at most",
		"nbsp\u00a0":                      "whitespace",
	}
	for n, want := range bad {
		err := ValidateName(n)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName mentioning %q", n, err, want)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"claimctl/", "a/b/", "/"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "claimctl", "sp ace/", "\x01/"} {
		if err := ValidatePrefix(p); !errors.Is(err, ErrInvalidPrefix) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidPrefix", p, err)
		}
	}
}

func TestEscapeKeepsNamesApart(t *testing.T) {
	ks, _ := NewKeyspace(DefaultPrefix)
	cases := []struct{ name, key string }{
		{"deploy", "claimctl/deploy/1f"},
		{"a/b", "claimctl/a%2Fb/1f"},
		{"100%", "claimctl/100%25/1f"},
		{"a%2Fb", "claimctl/a%252Fb/1f"},
	}
	for _, c := range cases {
		if got := ks.Key(c.name, 0x1f); got != c.key {
			t.Errorf("Key(%q) = %q, want %q", c.name, got, c.key)
		}
		name, lease, ok := ks.Parse(c.key)
		if !ok || name != c.name || lease != 0x1f {
			t.Errorf("Parse(%q) = %q, %x, %v; want %q, 1f, true", c.key, name, lease, ok, c.name)
		}
	}
	// No claim's range may contain another claim's keys.
	names := []string{"a", "a/b", "a%2Fb", "a/", "ab", "a/b/c"}
	for _, x := range names {
		for _, y := range names {
			if x != y && strings.HasPrefix(ks.Key(y, 1), ks.ClaimPrefix(x)) {
				t.Errorf("claim %q's range %q contains claim %q's key %q", x, ks.ClaimPrefix(x), y, ks.Key(y, 1))
			}
		}
	}
}

func FuzzEscapeName(f *testing.F) {
	for _, s := range []string{"deploy", "a/b", "%", "%2F", "a%25b", "ü/", "//"} {
		f.Add(s)
	}
	ks, _ := NewKeyspace(DefaultPrefix)
	f.Fuzz(func(t *testing.T, name string) {
		esc := EscapeName(name)
		if strings.Contains(esc, "/") {
			t.Fatalf("EscapeName(%q) = %q contains '/'", name, esc)
		}
		back, err := UnescapeName(esc)
		if err != nil || back != name {
			t.Fatalf("UnescapeName(EscapeName(%q)) = %q, %v", name, back, err)
		}
		if ValidateName(name) == nil {
			got, lease, ok := ks.Parse(ks.Key(name, 0xabc))
			if !ok || got != name || lease != 0xabc {
				t.Fatalf("Parse(Key(%q)) = %q, %x, %v", name, got, lease, ok)
			}
		} else if utf8.ValidString(name) && name != "" && len(name) <= MaxNameLen && !strings.ContainsFunc(name, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			// Only whitespace/control/format runes may make a non-empty,
			// short, valid UTF-8 name invalid.
			if err := ValidateName(name); !strings.Contains(err.Error(), "at byte") {
				t.Fatalf("ValidateName(%q) = %v without a position", name, err)
			}
		}
	})
}

func FuzzUnescapeName(f *testing.F) {
	for _, s := range []string{"a%2Fb", "%25", "%", "%2", "%zz", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, esc string) {
		name, err := UnescapeName(esc)
		if err != nil {
			return
		}
		// Every accepted escaped form is canonical: one name, one key.
		if EscapeName(name) != esc {
			t.Fatalf("UnescapeName(%q) = %q, which escapes to %q", esc, name, EscapeName(name))
		}
	})
}

// TestSlotKeysAreNoContenders: slot keys parse as slots only, never as a
// contender of any claim, and neither a claim's range nor another claim's
// slot range contains them.
func TestSlotKeysAreNoContenders(t *testing.T) {
	ks, _ := NewKeyspace(DefaultPrefix)
	names := []string{"a", "a/b", "a%2Fb", "a%slot", "a%slot/0", "ab", "%", "a/b/c"}
	for _, x := range names {
		key := ks.SlotKey(x, 12)
		if n, _, ok := ks.Parse(key); ok {
			t.Errorf("Parse(%q) = %q, true: a slot key reads as a contender", key, n)
		}
		if n, i, ok := ks.ParseSlot(key); !ok || n != x || i != 12 {
			t.Errorf("ParseSlot(%q) = %q, %d, %v; want %q, 12, true", key, n, i, ok, x)
		}
		if _, _, ok := ks.ParseSlot(ks.Key(x, 1)); ok {
			t.Errorf("ParseSlot accepts the contender key %q", ks.Key(x, 1))
		}
		for _, y := range names {
			if strings.HasPrefix(key, ks.ClaimPrefix(y)) {
				t.Errorf("claim %q's range %q contains the slot key %q of %q", y, ks.ClaimPrefix(y), key, x)
			}
			if x != y && strings.HasPrefix(key, ks.SlotPrefix(y)) {
				t.Errorf("claim %q's slot range contains the slot key %q of %q", y, key, x)
			}
		}
	}
	for _, bad := range []string{"claimctl/a%slot/01", "claimctl/a%slot/-1", "claimctl/a%slot/x", "claimctl/%slot/0"} {
		if _, _, ok := ks.ParseSlot(bad); ok {
			t.Errorf("ParseSlot(%q) accepted", bad)
		}
	}
}
