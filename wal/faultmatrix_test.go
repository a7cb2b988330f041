package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/internal/memfs"
)

// faultOps are the mutating operations TestFaultMatrix fails.
var faultOps = []memfs.FaultOp{memfs.OpWrite, memfs.OpSync, memfs.OpTruncate, memfs.OpRename, memfs.OpRemove, memfs.OpSyncDir, memfs.OpCreate}

// faultRun is one run of the fault matrix's workload.
type faultRun struct {
	counts     map[memfs.FaultOp]int // operations done, by kind
	injected   bool                  // the fault was reached
	acked      int                   // acknowledged entries in the durable state
	ackedAfter int                   // Saves or Compacts acknowledged after the fault
	opsAfter   []memfs.FaultOp       // mutating operations after the fault
	lost       int                   // acknowledged entries missing after recovery
	openErr    error                 // from the Open after the crash or power loss
}

// faultEnd is how a run of the fault workload ends after its failure.
type faultEnd int

const (
	endCrash          faultEnd = iota // the process crashes
	endPowerLoss                      // the power fails
	endCrashThenPower                 // the process crashes, the next one appends, then the power fails
)

// runFaultWorkload runs a fixed workload of saves (most synced), overwrites
// and compactions over two process lives, failing the k-th operation of
// kind op (none if k is 0). After the failure it closes the log, ends as
// end says (a power loss keeps only synced data and directory changes),
// reopens, and counts the acknowledged entries that are not there.
func runFaultWorkload(op memfs.FaultOp, k int, end faultEnd) faultRun {
	rng := rand.New(rand.NewPCG(7, 7))
	fs := memfs.New()
	run := faultRun{counts: map[memfs.FaultOp]int{}}
	fs.SetFault(func(o memfs.FaultOp, name string) error {
		if run.injected {
			run.opsAfter = append(run.opsAfter, o)
			return nil
		}
		run.counts[o]++
		if o == op && run.counts[o] == k {
			run.injected = true
			return errors.New("injected EIO")
		}
		return nil
	})
	opts := Options{FS: fs, SegmentBytes: 4096, inlinePrealloc: true}
	history := []*model{newModel()}
	durable := 0
	ack := func(m *model, synced bool) {
		history = append(history, m)
		if run.injected {
			run.ackedAfter++
		}
		if synced {
			durable = len(history) - 1
		}
	}
	l, _, err := Open("", opts)
	for step := 0; err == nil && step < 80; step++ {
		if step == 40 {
			// A second life: Open's own operations are failed too.
			if err = l.Close(); err != nil {
				break
			}
			if l, _, err = Open("", opts); err != nil {
				l = nil
				break
			}
		}
		m := history[len(history)-1].clone()
		if step%13 == 12 && m.last > m.compacted.Slot+5 {
			c := Compacted{Slot: m.last - 5, Ballot: Ballot{Round: 1, Node: 1}}
			m.compact(c)
			if err = l.Compact(c); err != nil {
				history = append(history, m) // may be durable; not acknowledged
				break
			}
			ack(m, true)
			continue
		}
		b := randomBatch(rng, m, 300)
		m.save(b)
		synced := step%5 != 4
		if err = l.Save(b, synced); err != nil {
			history = append(history, m)
			break
		}
		ack(m, synced)
	}
	if l != nil {
		// Nothing may be acknowledged once the log failed; Close writes
		// nothing after a failure.
		if run.injected {
			if l.Save(Batch{Entries: []Entry{{Slot: history[len(history)-1].last + 1}}}, true) == nil {
				run.ackedAfter++
			}
		}
		l.Close()
	}
	if end == endCrashThenPower {
		// The next process recovers what it can see and acknowledges more
		// on top of it, then the power fails: what it recovered and what it
		// acknowledged must both survive.
		fs.Crash()
		if l, _, run.openErr = Open("", opts); run.openErr != nil {
			run.lost = int(history[durable].last - history[durable].compacted.Slot)
			return run
		}
		var found *model
		for i := len(history) - 1; i >= durable; i-- {
			if history[i].equal(l) {
				found = history[i]
				break
			}
		}
		if found == nil {
			l.Close()
			run.lost = -1
			return run
		}
		m := found.clone()
		b := Batch{Entries: []Entry{{Slot: m.last + 1, Value: []byte("after the crash")}, {Slot: m.last + 2, Value: []byte("and more")}}}
		m.save(b)
		err := l.Save(b, true)
		l.Close()
		if err != nil {
			run.lost = -1
			return run
		}
		history, durable = []*model{m}, 0
	}
	dm := history[durable]
	run.acked = int(dm.last - dm.compacted.Slot)
	if end == endCrash {
		fs.Crash()
	} else {
		fs.PowerLoss(nil)
	}
	l, _, run.openErr = Open("", opts)
	if run.openErr != nil {
		run.lost = run.acked
		return run
	}
	defer l.Close()
	for i := len(history) - 1; i >= durable; i-- {
		if history[i].equal(l) {
			return run
		}
	}
	// Count the acknowledged entries that are missing or different.
	for s := dm.compacted.Slot + 1; s <= dm.last; s++ {
		got, err := l.Entries(s, s+1, 1<<30)
		if err != nil || len(got) != 1 || !bytes.Equal(got[0].Value, dm.entries[s].Value) {
			run.lost++
		}
	}
	if run.lost == 0 {
		run.lost = -1 // entries are there, but not the state of any prefix
	}
	return run
}

// TestFaultMatrix fails each kind of mutating operation (write, fdatasync,
// truncate, rename, remove, directory sync, create) at each of its
// occurrences in a fixed workload (up to faultsPerOp of them, evenly
// spread), closes the log, and then, once after a process crash and once
// after a power loss, reopens it and counts acknowledged entries that are
// gone. Every count must be 0, nothing may be acknowledged after the
// failure, and the log must do nothing more once it has failed. The matrix
// is printed with -v.
func TestFaultMatrix(t *testing.T) {
	const faultsPerOp = 30
	base := runFaultWorkload("", 0, endCrash)
	if base.lost != 0 || base.openErr != nil {
		t.Fatalf("without faults: %d lost, %v", base.lost, base.openErr)
	}
	ends := []struct {
		end  faultEnd
		name string
	}{{endCrash, "crash"}, {endPowerLoss, "power loss"}, {endCrashThenPower, "crash+append+power loss"}}
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %6s %8s", "op", "occurs", "injected")
	for _, e := range ends {
		fmt.Fprintf(&table, " %24s", "acked/lost: "+e.name)
	}
	fmt.Fprintf(&table, " %10s\n", "acks after")
	for _, op := range faultOps {
		n := base.counts[op]
		if n == 0 {
			t.Errorf("the workload never does %s", op)
			continue
		}
		var ks []int
		for i := 0; i < min(n, faultsPerOp); i++ {
			ks = append(ks, 1+i*n/min(n, faultsPerOp))
		}
		acked, lost := make([]int, len(ends)), make([]int, len(ends))
		ackedAfter := 0
		for _, k := range ks {
			for i, e := range ends {
				r := runFaultWorkload(op, k, e.end)
				if !r.injected {
					t.Errorf("%s #%d: the fault was never reached", op, k)
					continue
				}
				if len(r.opsAfter) > 0 {
					t.Errorf("%s #%d: after the failure the log still did %v", op, k, r.opsAfter)
				}
				if r.lost != 0 {
					t.Errorf("%s #%d, %s: %d acknowledged entries lost (-1: not a state the log went through; Open: %v)", op, k, e.name, r.lost, r.openErr)
				}
				ackedAfter += r.ackedAfter
				acked[i] += r.acked
				lost[i] += max(r.lost, 0)
			}
		}
		fmt.Fprintf(&table, "%-8s %6d %8d", op, n, len(ks))
		for i := range ends {
			fmt.Fprintf(&table, " %24s", fmt.Sprintf("%d/%d", acked[i], lost[i]))
		}
		fmt.Fprintf(&table, " %10d\n", ackedAfter)
	}
	t.Logf("fault matrix: each operation kind failed at its k-th occurrence, for each k shown; "+
		"acknowledged entries summed over the runs, and how many of them were lost:\n%s", table.String())
}
