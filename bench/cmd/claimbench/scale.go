package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/claim"
)

// scaleWorkers is how many acquisitions run at once while the scale
// scenario fills etcd.
const scaleWorkers = 32

// scale holds many claims at once, each taken through pkg/claim's real
// Acquire (Grant + Txn, exactly the keys and metadata `claimctl acquire`
// writes) from in-process workers, since 10,000 claimctl processes would
// take minutes of CPU on two cores. Then it times `claimctl list` and
// `claimctl status` against etcdctl reading the same keys.
func (b *bench) scale(ctx context.Context) error {
	n := b.cfg.scaleClaims
	cl, err := claim.New(b.cli, claim.Options{Prefix: claim.DefaultPrefix, RequestTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	var leases sync.Map
	var next atomic.Int64
	var failed atomic.Int64
	t0 := time.Now()
	var wg sync.WaitGroup
	for range scaleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				actx, cancel := context.WithTimeout(ctx, 30*time.Second)
				h, err := cl.Acquire(actx, claim.AcquireOptions{
					Name: fmt.Sprintf("scale-%05d", i), TTL: 10 * time.Minute, Limit: 1, NonBlocking: true,
					Holder: claim.Holder{Owner: "bench@" + host, Host: host, PID: os.Getpid(), Note: "scale scenario"},
				})
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				leases.Store(i, h.LeaseID())
			}
		}()
	}
	wg.Wait()
	s := &Scale{Claims: n, CreateSecs: time.Since(t0).Seconds(), Commands: map[string]*Latency{}}
	b.res.Scale = s
	logf("%d claims held (%d failed) in %.1fs", n-int(failed.Load()), failed.Load(), s.CreateSecs)
	defer b.revokeAll(&leases)
	if failed.Load() > 0 {
		return fmt.Errorf("%d of %d acquisitions failed", failed.Load(), n)
	}

	mid := fmt.Sprintf("scale-%05d", n/2)
	u := b.srv.URL
	cmds := []struct {
		label string
		argv  []string
	}{
		{"claimctl list", []string{b.bin.Claimctl, "list", "--endpoints", u}},
		{"etcdctl get --prefix claimctl/", []string{b.bin.Etcdctl, "--endpoints=" + u, "get", "--prefix", "claimctl/"}},
		{"claimctl status NAME", []string{b.bin.Claimctl, "status", "--endpoints", u, mid}},
		{"etcdctl get --prefix claimctl/NAME/", []string{b.bin.Etcdctl, "--endpoints=" + u, "get", "--prefix", prefix(mid)}},
	}
	trials := 5
	if b.cfg.quick {
		trials = 2
	}
	for i := range trials {
		for j := range cmds {
			c := cmds[(i+j)%len(cmds)] // rotate the order each trial
			if err := ctx.Err(); err != nil {
				return err
			}
			var out bytes.Buffer
			ufile := filepath.Join(b.work, "scale.usage")
			p, err := b.startMeasured(c.argv, ufile, &out)
			if err != nil {
				return err
			}
			if err := p.wait(2 * time.Minute); err != nil {
				return err
			}
			u, err := readUsage(ufile)
			if err != nil {
				return err
			}
			if s.Commands[c.label] == nil {
				s.Commands[c.label] = &Latency{}
			}
			s.Commands[c.label].add(u.wall, u.cpu, u.maxRSS)
			switch c.label {
			case "claimctl list":
				s.ListLines = countPrefixed(out.String(), "scale-")
			case "claimctl status NAME":
				s.StatusLines = strings.Count(out.String(), "\n")
			}
		}
	}
	for label, l := range s.Commands {
		l.summarize()
		logf("%s: median %.0f ms, CPU %.0f ms, max RSS %.0f KiB", label, l.WallSum.Median, l.CPUSum.Median, l.RSSSum.Median)
	}
	b.res.check("claimctl", fmt.Sprintf("list shows all %d claims", n), s.ListLines == n, fmt.Sprintf("%d claims listed", s.ListLines))
	return nil
}

// revokeAll revokes the scale scenario's leases, which removes its keys.
func (b *bench) revokeAll(leases *sync.Map) {
	ids := make(chan clientv3.LeaseID)
	var wg sync.WaitGroup
	for range scaleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, _ = b.cli.Revoke(ctx, id)
				cancel()
			}
		}()
	}
	leases.Range(func(_, v any) bool {
		ids <- v.(clientv3.LeaseID)
		return true
	})
	close(ids)
	wg.Wait()
}

func countPrefixed(text, prefix string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
