package claim

import "errors"

// Sentinel errors classify every failure of the protocol; callers map them to
// exit codes with errors.Is. Messages wrapping them say what happened and how
// to fix it.
var (
	// ErrInvalidName: the claim name is not acceptable (usage error).
	ErrInvalidName = errors.New("invalid claim name")
	// ErrInvalidPrefix: the key prefix is not acceptable (usage error).
	ErrInvalidPrefix = errors.New("invalid key prefix")
	// ErrInvalidTTL: the TTL or another duration is out of range (usage error).
	ErrInvalidTTL = errors.New("invalid TTL")
	// ErrInvalidLimit: the slot limit is out of range (usage error).
	ErrInvalidLimit = errors.New("invalid limit")
	// ErrLimitMismatch: other contenders use another --limit for the claim.
	ErrLimitMismatch = errors.New("limit mismatch")
	// ErrInvalidSlots: the slot names are not acceptable (usage error).
	ErrInvalidSlots = errors.New("invalid slots")
	// ErrSlotsMismatch: other contenders use other --slots for the claim.
	ErrSlotsMismatch = errors.New("slots mismatch")
	// ErrMalformedToken: the token cannot be parsed.
	ErrMalformedToken = errors.New("malformed token")
	// ErrBusy: the claim is held and the caller asked not to wait.
	ErrBusy = errors.New("claim is busy")
	// ErrWaitTimeout: the caller stopped waiting (its -w bound passed, or it
	// was interrupted) before the claim was free.
	ErrWaitTimeout = errors.New("stopped waiting for the claim")
	// ErrNotHeld: the token (or this process) no longer holds the claim.
	ErrNotHeld = errors.New("claim not held")
	// ErrUnavailable: etcd could not be reached or did not answer in time, so
	// the outcome is unknown.
	ErrUnavailable = errors.New("etcd unavailable")
	// ErrPermission: etcd refused the request (authentication or RBAC).
	ErrPermission = errors.New("permission denied by etcd")
)
