//go:build !linux

package supervise

// Resolve fails off Linux, where run does not start commands.
func Resolve(spec Spec) (string, error) { return "", errUnsupported }

// ExecInPlace fails off Linux, where run does not start commands.
func ExecInPlace(spec Spec, path string) error { return errUnsupported }
