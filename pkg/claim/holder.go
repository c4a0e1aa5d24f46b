package claim

import (
	"encoding/json"
	"time"
)

// Holder is the metadata a contender stores as its key's value, so that
// status and waiting contenders can say who holds a claim and why.
type Holder struct {
	Owner      string     `json:"owner"`
	Host       string     `json:"host,omitempty"`
	PID        int        `json:"pid,omitempty"`
	Note       string     `json:"note,omitempty"`
	QueuedAt   time.Time  `json:"queued_at"`
	AcquiredAt *time.Time `json:"acquired_at,omitempty"`
	TTLSeconds int64      `json:"ttl_seconds"`
	Limit      int        `json:"limit"`
	// Slots are the names of the claim's slots (--slots), in order: slot i
	// is called Slots[i]. Empty for numbered slots.
	Slots []string `json:"slots,omitempty"`
	// ForcedBy is set just before an administrator removes the hold with
	// release --force, so the holder can say who took its claim away.
	ForcedBy string `json:"forced_by,omitempty"`
}

func (h Holder) encode() string {
	b, err := json.Marshal(h)
	if err != nil {
		// Holder has only plain fields; Marshal cannot fail on it.
		panic(err)
	}
	return string(b)
}

// decodeHolder parses a key's value. Values that are not claimctl metadata
// (etcdctl lock writes an empty value) give nil: such a contender is a
// foreign mutex user, which counts as limit 1.
func decodeHolder(value []byte) *Holder {
	if len(value) == 0 || value[0] != '{' {
		return nil
	}
	var h Holder
	if err := json.Unmarshal(value, &h); err != nil || h.Limit < 1 {
		return nil
	}
	return &h
}

// Entry is one contender's key: a holder or a waiter.
type Entry struct {
	Key            string
	Name           string
	Lease          int64 // 0 when the key's last segment is not a lease ID
	CreateRevision int64 // the fencing token if this entry holds the claim
	Holder         *Holder
	// Slot is a holder's slot, from 0 to the limit - 1, or -1 for a waiter
	// and for a holder whose slot is not known (it has not taken one yet).
	// SlotName is its name when the claim has named slots.
	Slot     int
	SlotName string
}

// limit is the slot limit this contender uses; foreign contenders (etcdctl
// lock, concurrency.Mutex) are mutex users.
func (e Entry) limit() int {
	if e.Holder == nil {
		return 1
	}
	return e.Holder.Limit
}

// slots are the slot names this contender uses (nil for numbered slots and
// for foreign contenders).
func (e Entry) slots() []string {
	if e.Holder == nil {
		return nil
	}
	return e.Holder.Slots
}

// setSlot records a holder's slot index and, for named slots, its name.
func (e *Entry) setSlot(index int) {
	e.Slot = index
	if s := e.slots(); index >= 0 && index < len(s) {
		e.SlotName = s[index]
	}
}

// OwnerString describes who the entry belongs to, for messages.
func (e Entry) OwnerString() string {
	if e.Holder == nil {
		return "a client without claimctl metadata (etcdctl lock?)"
	}
	s := e.Holder.Owner
	if e.Holder.Note != "" {
		s += " (" + e.Holder.Note + ")"
	}
	return s
}
