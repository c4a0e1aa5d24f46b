//go:build !linux

package supervise

import (
	"errors"
	"strings"
	"testing"
)

func TestStartUnsupported(t *testing.T) {
	c, err := Start(Spec{Path: "true"})
	if c != nil || err == nil {
		t.Fatalf("Start = %v, %v; want nil and an error", c, err)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Start error %q does not match errors.ErrUnsupported", err)
	}
	var se *StartError
	if errors.As(err, &se) {
		t.Errorf("Start error %q is a *StartError; it would be reported as exit %d", err, se.Code)
	}
	if !strings.Contains(err.Error(), "Linux only") {
		t.Errorf("Start error %q does not say run needs Linux", err)
	}
}
