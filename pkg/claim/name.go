package claim

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest claim name accepted, in bytes. It keeps keys, and
// the tokens that embed names, a manageable size.
const MaxNameLen = 200

// DefaultPrefix is the key prefix claims live under unless configured
// otherwise. With it, `etcdctl lock claimctl/NAME` contends with claim NAME.
const DefaultPrefix = "claimctl/"

// ValidateName reports why name cannot be a claim name, or nil. Names are
// shown in terminals, logs and shell variables, so whitespace, control
// characters and invalid UTF-8 are refused rather than escaped.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty; give a name such as 'deploy' or 'backup/db'", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: the name is %d bytes long; use at most %d", ErrInvalidName, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	for i, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			//lint:ignore ST1005 the message ends with the punctuation allowed, ":" included
			return fmt.Errorf("%w: %s has %s at byte %d; use letters, digits and punctuation such as - _ . / :",
				ErrInvalidName, strconv.Quote(name), describeRune(r), i)
		}
	}
	return nil
}

func describeRune(r rune) string {
	switch {
	case r == ' ':
		return "a space"
	case unicode.IsSpace(r):
		return fmt.Sprintf("whitespace %U", r)
	case unicode.IsControl(r):
		return fmt.Sprintf("control character %U", r)
	default:
		return fmt.Sprintf("character %U", r)
	}
}

// ValidatePrefix reports why prefix cannot be a key prefix, or nil. The
// prefix must end in '/' so that the keys of claims under it read as paths
// and cannot run into keys of a sibling prefix ("claimctl" would also match
// "claimctl2/...").
func ValidatePrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("%w: the key prefix is empty; use something like %q", ErrInvalidPrefix, DefaultPrefix)
	case !strings.HasSuffix(prefix, "/"):
		return fmt.Errorf("%w: %q must end with '/'; use %q", ErrInvalidPrefix, prefix, prefix+"/")
	case !utf8.ValidString(prefix):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidPrefix, prefix)
	}
	for _, r := range prefix {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: %q has %s", ErrInvalidPrefix, prefix, describeRune(r))
		}
	}
	return nil
}

// EscapeName maps a valid name to the form used in keys: '%' becomes "%25"
// and '/' becomes "%2F", and nothing else changes. The escaped form has no
// '/', so "<prefix><escaped>/" ranges of two different names never overlap,
// and plain names ("deploy") keep the key layout etcdctl lock uses.
func EscapeName(name string) string {
	if !strings.ContainsAny(name, "%/") {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '%':
			b.WriteString("%25")
		case '/':
			b.WriteString("%2F")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeName reverses EscapeName. It refuses any other escape and any raw
// '/', so that each key maps back to at most one name.
func UnescapeName(escaped string) (string, error) {
	if strings.Contains(escaped, "/") {
		return "", fmt.Errorf("escaped name %q contains '/'", escaped)
	}
	if !strings.Contains(escaped, "%") {
		return escaped, nil
	}
	var b strings.Builder
	for i := 0; i < len(escaped); i++ {
		if escaped[i] != '%' {
			b.WriteByte(escaped[i])
			continue
		}
		switch {
		case strings.HasPrefix(escaped[i:], "%25"):
			b.WriteByte('%')
		case strings.HasPrefix(escaped[i:], "%2F"):
			b.WriteByte('/')
		default:
			return "", fmt.Errorf("escaped name %q has an unknown escape at byte %d", escaped, i)
		}
		i += 2
	}
	return b.String(), nil
}

// Keyspace lays out the keys of claims under one prefix.
type Keyspace struct {
	prefix string
}

// NewKeyspace returns the keyspace under prefix after validating it.
func NewKeyspace(prefix string) (Keyspace, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return Keyspace{}, err
	}
	return Keyspace{prefix: prefix}, nil
}

// Prefix returns the key prefix all claims live under.
func (ks Keyspace) Prefix() string { return ks.prefix }

// ClaimPrefix returns the key range prefix of one claim: every contender's key
// starts with it and no other claim's key does.
func (ks Keyspace) ClaimPrefix(name string) string {
	return ks.prefix + EscapeName(name) + "/"
}

// Key returns the key a contender holding lease writes for claim name. The
// lease ID is in lower-case hex without padding, as etcd's Mutex writes it.
func (ks Keyspace) Key(name string, lease int64) string {
	return ks.ClaimPrefix(name) + strconv.FormatInt(lease, 16)
}

// SlotPrefix returns the key range prefix of claim name's slot keys,
// <prefix><escaped name>%slot/, under which each semaphore holder keeps the
// key <SlotPrefix><index> attached to its own lease (see SlotKey).
//
// The layout is collision-free. An escaped name has a '%' only as the start
// of "%25" or "%2F", so "<escaped>%slot" is the escaped form of no name:
// Parse rejects slot keys (nothing that counts contenders sees them), and no
// claim's ClaimPrefix, which ends in "<escaped>/", is a prefix of any slot
// key or contained in a slot range. Escaped names have no '/', so the slot
// ranges of two claims never overlap either ("a%slot/" does not contain the
// slot keys of "a/b", which are under "a%2Fb%slot/").
func (ks Keyspace) SlotPrefix(name string) string {
	return ks.prefix + EscapeName(name) + slotMark
}

// slotMark separates a claim's escaped name from its slot range.
const slotMark = "%slot/"

// SlotKey returns the key of slot index (decimal) of claim name.
func (ks Keyspace) SlotKey(name string, index int) string {
	return ks.SlotPrefix(name) + strconv.Itoa(index)
}

// ParseSlot splits a slot key into its claim name and slot index. ok is
// false for any other key, and for indexes not in canonical decimal form.
func (ks Keyspace) ParseSlot(key string) (name string, index int, ok bool) {
	rest, found := strings.CutPrefix(key, ks.prefix)
	if !found {
		return "", 0, false
	}
	escaped, num, found := strings.Cut(rest, slotMark)
	if !found || escaped == "" {
		return "", 0, false
	}
	name, err := UnescapeName(escaped)
	if err != nil || ValidateName(name) != nil {
		return "", 0, false
	}
	index, err = strconv.Atoi(num)
	if err != nil || index < 0 || strconv.Itoa(index) != num {
		return "", 0, false
	}
	return name, index, true
}

// Parse splits a key under the prefix into its claim name and lease ID. ok is
// false for keys that do not have the claim layout (foreign keys under the
// prefix); lease is 0 when the last segment is not a hex lease ID.
func (ks Keyspace) Parse(key string) (name string, lease int64, ok bool) {
	rest, found := strings.CutPrefix(key, ks.prefix)
	if !found {
		return "", 0, false
	}
	slash := strings.LastIndexByte(rest, '/')
	if slash <= 0 {
		return "", 0, false
	}
	name, err := UnescapeName(rest[:slash])
	if err != nil || ValidateName(name) != nil {
		return "", 0, false
	}
	lease, err = strconv.ParseInt(rest[slash+1:], 16, 64)
	if err != nil {
		lease = 0
	}
	return name, lease, true
}
