package claim

import (
	"errors"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	tok := Token{ClusterID: 0xcdf818194e3a8c32, Lease: 0x694d7b4a1f2c0003, Revision: 42, Prefix: "claimctl/", Name: "backup/db"}
	s := tok.String()
	if strings.ContainsAny(s, " \t\n'\"$`\\;&|") {
		t.Fatalf("token %q has characters a shell would need quoted", s)
	}
	got, err := ParseToken(s)
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %+v, %v; want %+v", s, got, err, tok)
	}
	if got.Key() != "claimctl/backup%2Fdb/694d7b4a1f2c0003" {
		t.Fatalf("Key() = %q", got.Key())
	}
}

func TestParseTokenErrors(t *testing.T) {
	good := Token{ClusterID: 1, Lease: 2, Revision: 3, Prefix: "p/", Name: "n"}.String()
	cases := map[string]string{
		"":                                       "empty",
		"garbage":                                "does not start with",
		good[:len(good)-4]:                       "", // truncated: any malformed-token message
		strings.Replace(good, ".3.", ".x.", 1):   "revision",
		strings.Replace(good, ".3.", ".0.", 1):   "revision",
		strings.Replace(good, ".2.", ".-2.", 1):  "lease",
		good + ".extra":                          "parts",
		strings.Replace(good, "ct1.", "ct9.", 1): "does not start with",
		strings.Replace(good, ".1.", ".01.", 1):  "canonical",
	}
	for in, want := range cases {
		_, err := ParseToken(in)
		if !errors.Is(err, ErrMalformedToken) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseToken(%q) = %v, want ErrMalformedToken mentioning %q", in, err, want)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(Token{ClusterID: 1, Lease: 2, Revision: 3, Prefix: "claimctl/", Name: "deploy"}.String())
	f.Add("ct1.a.b.c.d.e")
	f.Add("ct1....." + "")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("ParseToken(%q) error %v does not wrap ErrMalformedToken", s, err)
			}
			return
		}
		if tok.String() != strings.TrimSpace(s) {
			t.Fatalf("ParseToken(%q) accepted a non-canonical token (canonical %q)", s, tok.String())
		}
		if ValidateName(tok.Name) != nil || ValidatePrefix(tok.Prefix) != nil {
			t.Fatalf("ParseToken(%q) accepted an invalid name or prefix", s)
		}
	})
}
