package boottime

import (
	"testing"
	"time"
)

func TestNowAdvancesWithWallTime(t *testing.T) {
	a := Now()
	time.Sleep(20 * time.Millisecond)
	b := Now()
	if d := b.Sub(a); d < 15*time.Millisecond || d > 5*time.Second {
		t.Fatalf("boot-time clock advanced %v over a 20ms sleep; want about 20ms", d)
	}
	if !a.Before(b) || b.Before(a) {
		t.Fatalf("Before is inconsistent for %v and %v", a, b)
	}
	if got := a.Add(time.Second).Sub(a); got != time.Second {
		t.Fatalf("Add/Sub round trip = %v, want 1s", got)
	}
	if Until(Now().Add(time.Hour)) <= 0 {
		t.Fatal("Until of an instant an hour ahead is not positive")
	}
}
