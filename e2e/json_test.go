//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// The documented JSON shapes (docs/json.md), written out independently of
// the product's structs so that an accidental schema change fails here.
type jsonEntry struct {
	Owner            string     `json:"owner"`
	Host             string     `json:"host"`
	PID              int        `json:"pid"`
	Note             string     `json:"note"`
	FencingToken     int64      `json:"fencing_token"`
	LeaseID          string     `json:"lease_id"`
	Key              string     `json:"key"`
	Slot             *int       `json:"slot"`
	SlotName         string     `json:"slot_name"`
	QueuedAt         *time.Time `json:"queued_at"`
	AcquiredAt       *time.Time `json:"acquired_at"`
	TTLSeconds       int64      `json:"ttl_seconds"`
	RemainingSeconds *int64     `json:"remaining_seconds"`
}

var hexID = regexp.MustCompile(`^[0-9a-f]+$`)

func (e jsonEntry) check(t *testing.T, what string) {
	t.Helper()
	if e.Owner == "" || e.FencingToken <= 0 || !hexID.MatchString(e.LeaseID) || !strings.HasPrefix(e.Key, "claimctl/") || e.QueuedAt == nil {
		t.Fatalf("%s: incomplete entry %+v", what, e)
	}
}

// claimctlJSON runs claimctl and decodes its stdout strictly into v.
func claimctlJSON(t *testing.T, endpoints []string, v any, args ...string) {
	t.Helper()
	cmd := exec.Command(claimctlBin, append([]string{"--endpoints", strings.Join(endpoints, ",")}, args...)...)
	cmd.Env = append(cmd.Environ(), "USER=e2e")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("claimctl %v: %v", args, err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("claimctl %v: output does not match docs/json.md: %v\n%s", args, err, out)
	}
}

func TestJSONOutputMatchesTheDocumentedSchema(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()

	var acq struct {
		Name         string    `json:"name"`
		Token        string    `json:"token"`
		FencingToken int64     `json:"fencing_token"`
		LeaseID      string    `json:"lease_id"`
		Key          string    `json:"key"`
		TTLSeconds   int64     `json:"ttl_seconds"`
		Limit        int       `json:"limit"`
		Slot         int       `json:"slot"`
		SlotName     string    `json:"slot_name"`
		Owner        string    `json:"owner"`
		AcquiredAt   time.Time `json:"acquired_at"`
	}
	claimctlJSON(t, endpoints, &acq, "acquire", "-o", "json", "--ttl", "30s", "--note", "n1", "deploy")
	if acq.Name != "deploy" || !strings.HasPrefix(acq.Token, "ct1.") || acq.FencingToken <= 0 || !hexID.MatchString(acq.LeaseID) ||
		acq.Key != "claimctl/deploy/"+acq.LeaseID || acq.TTLSeconds != 30 || acq.Limit != 1 || !strings.HasPrefix(acq.Owner, "e2e@") ||
		time.Since(acq.AcquiredAt) > time.Minute {
		t.Fatalf("acquire -o json = %+v", acq)
	}
	waiter := startClaimctl(t, endpoints, nil, "acquire", "-w", "30s", "deploy")
	waitFor(t, 10*time.Second, "the waiter to queue", func() bool { return strings.Contains(statusJSON(t, endpoints, "deploy"), `"waiters": [`+"\n") })

	var renew struct {
		Name         string `json:"name"`
		FencingToken int64  `json:"fencing_token"`
		LeaseID      string `json:"lease_id"`
		TTLSeconds   int64  `json:"ttl_seconds"`
	}
	claimctlJSON(t, endpoints, &renew, "renew", "-o", "json", acq.Token)
	if renew.Name != "deploy" || renew.FencingToken != acq.FencingToken || renew.LeaseID != acq.LeaseID || renew.TTLSeconds != 30 {
		t.Fatalf("renew -o json = %+v", renew)
	}

	var status struct {
		Name     string      `json:"name"`
		Limit    int         `json:"limit"`
		Revision int64       `json:"revision"`
		Holders  []jsonEntry `json:"holders"`
		Waiters  []jsonEntry `json:"waiters"`
	}
	claimctlJSON(t, endpoints, &status, "status", "-o", "json", "deploy")
	if status.Name != "deploy" || status.Limit != 1 || status.Revision < acq.FencingToken || len(status.Holders) != 1 || len(status.Waiters) != 1 {
		t.Fatalf("status -o json = %+v", status)
	}
	h := status.Holders[0]
	h.check(t, "status holder")
	if h.Slot == nil || *h.Slot != 0 || status.Waiters[0].Slot != nil {
		t.Fatalf("status: holder slot %v, waiter slot %v; want 0 and none", h.Slot, status.Waiters[0].Slot)
	}
	if h.FencingToken != acq.FencingToken || h.Note != "n1" || h.RemainingSeconds == nil || *h.RemainingSeconds > 30 || h.TTLSeconds != 30 || h.PID <= 0 {
		t.Fatalf("status holder = %+v", h)
	}
	status.Waiters[0].check(t, "status waiter")
	if status.Waiters[0].AcquiredAt != nil || status.Waiters[0].RemainingSeconds != nil {
		t.Fatalf("a waiter has acquired_at or remaining_seconds: %+v", status.Waiters[0])
	}

	var list []struct {
		Name    string      `json:"name"`
		Limit   int         `json:"limit"`
		Holders []jsonEntry `json:"holders"`
		Waiting int         `json:"waiting"`
	}
	claimctlJSON(t, endpoints, &list, "list", "-o", "json")
	if len(list) != 1 || list[0].Name != "deploy" || list[0].Waiting != 1 || len(list[0].Holders) != 1 {
		t.Fatalf("list -o json = %+v", list)
	}
	list[0].Holders[0].check(t, "list holder")

	var rel struct {
		Name         string `json:"name"`
		FencingToken int64  `json:"fencing_token"`
		Released     bool   `json:"released"`
	}
	claimctlJSON(t, endpoints, &rel, "release", "-o", "json", acq.Token)
	if rel != (struct {
		Name         string `json:"name"`
		FencingToken int64  `json:"fencing_token"`
		Released     bool   `json:"released"`
	}{"deploy", acq.FencingToken, true}) {
		t.Fatalf("release -o json = %+v", rel)
	}
	if code := waiter.wait(10 * time.Second); code != 0 {
		t.Fatalf("waiter exit %d", code)
	}

	var forced struct {
		Name     string      `json:"name"`
		ForcedBy string      `json:"forced_by"`
		Removed  []jsonEntry `json:"removed"`
	}
	claimctlJSON(t, endpoints, &forced, "release", "--force", "-o", "json", "deploy")
	if forced.Name != "deploy" || !strings.HasPrefix(forced.ForcedBy, "e2e@") || len(forced.Removed) != 1 {
		t.Fatalf("release --force -o json = %+v", forced)
	}
	forced.Removed[0].check(t, "removed holder")
	if forced.Removed[0].AcquiredAt == nil {
		t.Fatalf("a holder that waited has no acquired_at: %+v", forced.Removed[0])
	}

	// history: the hold released by token, then the waiter that took over
	// and was forced out.
	var history struct {
		Name                 string     `json:"name"`
		Revision             int64      `json:"revision"`
		CompleteFromRevision int64      `json:"complete_from_revision"`
		Compacted            bool       `json:"compacted"`
		CompleteAfter        *time.Time `json:"complete_after"`
		ReadAt               time.Time  `json:"read_at"`
		Since                *time.Time `json:"since"`
		Holds                []struct {
			Owner         string     `json:"owner"`
			Host          string     `json:"host"`
			PID           int        `json:"pid"`
			Note          string     `json:"note"`
			Foreign       bool       `json:"foreign"`
			FencingToken  int64      `json:"fencing_token"`
			LeaseID       string     `json:"lease_id"`
			Key           string     `json:"key"`
			Slot          *int       `json:"slot"`
			SlotName      string     `json:"slot_name"`
			TTLSeconds    int64      `json:"ttl_seconds"`
			QueuedAt      *time.Time `json:"queued_at"`
			AcquiredAt    *time.Time `json:"acquired_at"`
			BeforeHistory bool       `json:"before_history"`
			Held          bool       `json:"held"`
			TakenRevision int64      `json:"taken_revision"`
			TakenAt       *time.Time `json:"taken_at"`
			TakenAfter    *time.Time `json:"taken_after"`
			TakenBy       *time.Time `json:"taken_by"`
			WaitedMS      *int64     `json:"waited_ms"`
			EndRevision   int64      `json:"end_revision"`
			EndedAfter    *time.Time `json:"ended_after"`
			EndedBy       *time.Time `json:"ended_by"`
			End           string     `json:"end"`
			Proof         string     `json:"proof"`
			ForcedBy      string     `json:"forced_by"`
		} `json:"holds"`
	}
	claimctlJSON(t, endpoints, &history, "history", "-o", "json", "--since", "1h", "deploy")
	if history.Name != "deploy" || history.Revision < forced.Removed[0].FencingToken || history.CompleteFromRevision != 1 || history.Compacted ||
		history.CompleteAfter != nil || history.Since == nil || time.Since(history.ReadAt) > time.Minute || len(history.Holds) != 2 {
		t.Fatalf("history -o json = %+v", history)
	}
	first, second := history.Holds[0], history.Holds[1]
	if first.FencingToken != acq.FencingToken || first.Note != "n1" || first.LeaseID != acq.LeaseID || first.Key != acq.Key || !first.Held ||
		first.TakenRevision != acq.FencingToken || first.TakenAt == nil || first.WaitedMS == nil || *first.WaitedMS != 0 ||
		first.Slot == nil || *first.Slot != 0 || first.TTLSeconds != 30 || first.QueuedAt == nil || first.PID <= 0 || first.Host == "" ||
		first.EndRevision <= first.FencingToken || first.EndedBy == nil || first.EndedAfter == nil || first.End != "released" || first.Proof != "before_expiry" {
		t.Fatalf("history: the first hold = %+v", first)
	}
	if second.FencingToken != forced.Removed[0].FencingToken || second.TakenRevision != first.EndRevision || second.AcquiredAt == nil ||
		second.TakenAt == nil || !second.TakenAt.Equal(*second.AcquiredAt) || second.WaitedMS == nil || second.End != "forced" ||
		second.ForcedBy != forced.ForcedBy || second.EndedBy == nil {
		t.Fatalf("history: the second hold = %+v", second)
	}

	var doctor struct {
		Settings []struct {
			Key    string `json:"key"`
			Value  string `json:"value"`
			Source string `json:"source"`
		} `json:"settings"`
		Checks []struct {
			Area   string `json:"area"`
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
			Fix    string `json:"fix"`
		} `json:"checks"`
		OK bool `json:"ok"`
	}
	claimctlJSON(t, endpoints, &doctor, "doctor", "-o", "json")
	if !doctor.OK || len(doctor.Settings) == 0 || doctor.Settings[0].Key != "endpoints" || doctor.Settings[0].Source != "flag --endpoints" || len(doctor.Checks) < 4 {
		t.Fatalf("doctor -o json = %+v", doctor)
	}

	var version struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
		Date    string `json:"date"`
		Go      string `json:"go"`
		OS      string `json:"os"`
		Arch    string `json:"arch"`
	}
	claimctlJSON(t, endpoints, &version, "version", "-o", "json")
	if version.Version == "" || !strings.HasPrefix(version.Go, "go") || version.OS == "" {
		t.Fatalf("version -o json = %+v", version)
	}
}
