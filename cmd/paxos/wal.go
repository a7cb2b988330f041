package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/paxos-go/paxos/wal"
)

type walCmd struct {
	Dump   walDumpCmd   `cmd:"" help:"Print a log's segments, record counts, slot ranges and hard state."`
	Verify walVerifyCmd `cmd:"" help:"Check a log: exit 0 if it is sound, 1 with the file and byte offset of any damage."`
}

type walDumpCmd struct {
	Dir string `arg:"" type:"existingdir" help:"The log directory, or a replica's data directory (its wal/ subdirectory is used)."`
}

type walVerifyCmd struct {
	Dir string `arg:"" type:"existingdir" help:"The log directory, or a replica's data directory (its wal/ subdirectory is used)."`
}

// Run prints what the log holds. Nothing is written to the directory.
func (c *walDumpCmd) Run(g *globals) error {
	dir, rep, err := inspectLog(c.Dir, g)
	if err != nil {
		return err
	}
	printReport(g.out, dir, rep)
	return nil
}

// Run checks the log without writing to it.
func (c *walVerifyCmd) Run(g *globals) error {
	dir, rep, err := inspectLog(c.Dir, g)
	if err != nil {
		return err
	}
	st := rep.State
	fmt.Fprintf(g.out, "%s: sound: %d segments, slots %s, promised %s, commit %d\n",
		dir, len(rep.Segments), slotRange(st.FirstSlot, st.LastSlot), ballot(st.HardState.Promised), st.HardState.Commit)
	if rep.Torn != nil {
		fmt.Fprintf(g.out, "note: %s ends in an interrupted write at byte %d (%s); opening the log cuts it off\n",
			rep.Torn.File, rep.Torn.Offset, rep.Torn.Reason)
	}
	return nil
}

// inspectLog finds the log that dir names and inspects it. dir may be the
// log directory itself or a replica's data directory, whose log is in its
// wal/ subdirectory (engine.Config.DataDir). A directory with no segment is
// an error: a log always has one once opened, so "sound, 0 segments" would
// only hide a wrong path or a lost log.
func inspectLog(dir string, g *globals) (string, *wal.Report, error) {
	if !hasSegments(dir) {
		if sub := filepath.Join(dir, "wal"); isDir(sub) {
			dir = sub
		}
	}
	rep, err := wal.Inspect(dir, wal.Options{Logger: g.log})
	if err != nil {
		return dir, nil, err
	}
	if len(rep.Segments) == 0 {
		return dir, nil, fmt.Errorf("%s holds no log segments (*.paxos): not a write-ahead log, nor a data directory with one in wal/", dir)
	}
	return dir, rep, nil
}

func hasSegments(dir string) bool {
	names, _ := filepath.Glob(filepath.Join(dir, "*.paxos"))
	return len(names) > 0
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

func printReport(w io.Writer, dir string, rep *wal.Report) {
	st := rep.State
	fmt.Fprintf(w, "log:        %s\n", dir)
	fmt.Fprintf(w, "hard state: promised %s, commit %d\n", ballot(st.HardState.Promised), st.HardState.Commit)
	if st.Compacted != (wal.Compacted{}) {
		fmt.Fprintf(w, "compacted:  up to slot %d (ballot %s)\n", st.Compacted.Slot, ballot(st.Compacted.Ballot))
	}
	fmt.Fprintf(w, "slots:      %s\n\n", slotRange(st.FirstSlot, st.LastSlot))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tSEQ\tFIRST\tBYTES\tUSED\tBATCHES\tRECORDS\tENTRIES\tSLOTS\tSTATE")
	for _, s := range rep.Segments {
		state := "sealed"
		if !s.Sealed {
			state = "tail"
		}
		slots := "-"
		if s.Entries > 0 {
			slots = fmt.Sprintf("%d..%d", s.MinSlot, s.MaxSlot)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			s.Name, s.Seq, s.FirstSlot, s.Size, s.End, s.Batches, s.Records, s.Entries, slots, state)
	}
	tw.Flush()
	for _, t := range rep.Temps {
		fmt.Fprintf(w, "\nleftover temporary file %s (deleted when the log is opened)\n", t)
	}
	if rep.Torn != nil {
		fmt.Fprintf(w, "\ninterrupted write in %s at byte %d (%s); opening the log cuts it off\n",
			rep.Torn.File, rep.Torn.Offset, rep.Torn.Reason)
	}
}

func ballot(b wal.Ballot) string { return fmt.Sprintf("%d.%d", b.Round, b.Node) }

func slotRange(first, last uint64) string {
	if last < first {
		return fmt.Sprintf("none (next is %d)", first)
	}
	return fmt.Sprintf("%d..%d (%d entries)", first, last, last-first+1)
}
