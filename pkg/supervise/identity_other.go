//go:build !linux

package supervise

// Self returns the calling process's Identity; off Linux there is none.
func Self() (Identity, error) { return Identity{}, errUnsupported }

// Covers always fails off Linux, where run does not start commands.
func (id Identity) Covers(via ...Identity) error { return errUnsupported }
