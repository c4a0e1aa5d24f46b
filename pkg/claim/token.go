package claim

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// tokenVersion starts every token so that the format can change later
// without old tokens being misread.
const tokenVersion = "ct1"

// Token identifies one hold of a claim, so that a later, separate process can
// renew or release exactly that hold and nothing else. It carries the etcd
// cluster ID (a token from another cluster is refused rather than misapplied),
// the lease, the holder key's create revision (the fencing token) and the key
// prefix and name, so that release does not depend on the caller's
// configuration.
type Token struct {
	ClusterID uint64
	Lease     int64
	Revision  int64
	Prefix    string
	Name      string
}

// String encodes the token as
// ct1.<cluster hex>.<lease hex>.<revision>.<base64url prefix>.<base64url name>,
// which is safe to pass through shells, environment variables and CI outputs.
func (t Token) String() string {
	enc := base64.RawURLEncoding
	return strings.Join([]string{
		tokenVersion,
		strconv.FormatUint(t.ClusterID, 16),
		strconv.FormatInt(t.Lease, 16),
		strconv.FormatInt(t.Revision, 10),
		enc.EncodeToString([]byte(t.Prefix)),
		enc.EncodeToString([]byte(t.Name)),
	}, ".")
}

// Key returns the holder key the token refers to.
func (t Token) Key() string {
	return Keyspace{prefix: t.Prefix}.Key(t.Name, t.Lease)
}

// ParseToken decodes a token printed by acquire. Every failure wraps
// ErrMalformedToken and says which part is wrong.
func ParseToken(s string) (Token, error) {
	bad := func(format string, args ...any) (Token, error) {
		return Token{}, fmt.Errorf("%w: %s; pass the token exactly as 'claimctl acquire' printed it", ErrMalformedToken, fmt.Sprintf(format, args...))
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return bad("the token is empty")
	}
	parts := strings.Split(s, ".")
	if parts[0] != tokenVersion {
		return bad("it does not start with %q", tokenVersion+".")
	}
	if len(parts) != 6 {
		return bad("it has %d dot-separated parts, want 6 (truncated?)", len(parts))
	}
	var t Token
	var err error
	if t.ClusterID, err = strconv.ParseUint(parts[1], 16, 64); err != nil || t.ClusterID == 0 {
		return bad("cluster ID %q is not a hex number", parts[1])
	}
	if t.Lease, err = strconv.ParseInt(parts[2], 16, 64); err != nil || t.Lease <= 0 {
		return bad("lease ID %q is not a positive hex number", parts[2])
	}
	if t.Revision, err = strconv.ParseInt(parts[3], 10, 64); err != nil || t.Revision <= 0 {
		return bad("revision %q is not a positive number", parts[3])
	}
	enc := base64.RawURLEncoding.Strict()
	prefix, err := enc.DecodeString(parts[4])
	if err != nil {
		return bad("key prefix part is not base64url")
	}
	name, err := enc.DecodeString(parts[5])
	if err != nil {
		return bad("name part is not base64url")
	}
	t.Prefix, t.Name = string(prefix), string(name)
	if err := ValidatePrefix(t.Prefix); err != nil {
		return bad("%v", err)
	}
	if err := ValidateName(t.Name); err != nil {
		return bad("%v", err)
	}
	// Reject non-canonical spellings so that one hold has exactly one token.
	if t.String() != s {
		return bad("it is not in canonical form")
	}
	return t, nil
}
