package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paxos-go/paxos/wal"
)

const golden = "../../wal/testdata/golden"

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// copyGolden copies the WAL package's golden log into a fresh directory.
func copyGolden(t *testing.T) (dir, segment string) {
	dir = t.TempDir()
	names, err := os.ReadDir(golden)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(golden, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
		segment = n.Name()
	}
	return dir, segment
}

func TestWALVerifySoundLog(t *testing.T) {
	code, out, errOut := runCLI("wal", "verify", golden)
	if code != 0 || !strings.Contains(out, "sound") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestWALVerifyNamesFileAndOffset(t *testing.T) {
	dir, seg := copyGolden(t)
	path := filepath.Join(dir, seg)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[0x70] ^= 0xff // inside the entry for slot 1, which later batches follow
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("wal", "verify", dir)
	if code != 1 || !strings.Contains(errOut, seg) || !strings.Contains(errOut, "at byte 96") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 naming %s at byte 96", code, out, errOut, seg)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, data) {
		t.Fatal("verify changed the file")
	}
}

func TestWALDump(t *testing.T) {
	code, out, errOut := runCLI("wal", "dump", golden)
	for _, want := range []string{"hard state: promised 2.2, commit 2", "compacted:  up to slot 1", "slots:      2..4", "0000000000000001-0000000000000001.paxos"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	if code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"wal", "verify"},
		{"wal", "verify", "/does/not/exist"},
		{"wal", "frobnicate"},
		{"--no-such-flag"},
	} {
		code, _, errOut := runCLI(args...)
		if code == 0 || !strings.Contains(errOut, "paxos: error:") {
			t.Errorf("%q: exit %d, stderr %q; want a non-zero exit and an error", args, code, errOut)
		}
	}
	if code, out, _ := runCLI("--help"); code != 0 || !strings.Contains(out, "Usage: paxos") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
}

// TestWALToolsFindTheLogInADataDir: given a replica's data directory, both
// commands look in its wal/ subdirectory, as the engine lays it out.
func TestWALToolsFindTheLogInADataDir(t *testing.T) {
	data := t.TempDir()
	logDir := filepath.Join(data, "wal")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(golden)
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(golden, n.Name()))
		if err := os.WriteFile(filepath.Join(logDir, n.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCLI("wal", "verify", data)
	if code != 0 || !strings.Contains(out, logDir+": sound: 1 segments") || !strings.Contains(out, "slots 2..4") {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q; want %s sound with slots 2..4", code, out, errOut, logDir)
	}
	code, out, errOut = runCLI("wal", "dump", data)
	if code != 0 || !strings.Contains(out, "log:        "+logDir) || !strings.Contains(out, "0000000000000001-0000000000000001.paxos") {
		t.Fatalf("dump: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestWALToolsRefuseAnEmptyDir: a directory with no segments is not a
// sound log but a wrong path or a lost log.
func TestWALToolsRefuseAnEmptyDir(t *testing.T) {
	empty := t.TempDir()
	withEmptyWAL := t.TempDir()
	if err := os.Mkdir(filepath.Join(withEmptyWAL, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{empty, withEmptyWAL} {
		for _, cmd := range []string{"verify", "dump"} {
			code, out, errOut := runCLI("wal", cmd, dir)
			if code != 1 || strings.Contains(out, "sound") || !strings.Contains(errOut, "no log segments") {
				t.Errorf("wal %s %s: exit %d, stdout %q, stderr %q; want exit 1 and no log segments", cmd, dir, code, out, errOut)
			}
		}
	}
}

// TestWALVerifyUsesTheWritersRecordLimit: a log written with a
// MaxRecordBytes above the default holds a record larger than the default
// limit; verify (which is given no limit) must read it with the limit the
// segment records, not report it as damage or an interrupted write.
func TestWALVerifyUsesTheWritersRecordLimit(t *testing.T) {
	dir := t.TempDir()
	l, _, err := wal.Open(dir, wal.Options{SegmentBytes: 20 << 20, MaxRecordBytes: 18 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, wal.DefaultMaxRecordBytes+(1<<20))
	for s := uint64(1); s <= 2; s++ {
		if err := l.Save(wal.Batch{Entries: []wal.Entry{{Slot: s, Value: big[:len(big)-int(s)]}}}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("wal", "verify", dir)
	if code != 0 || !strings.Contains(out, "slots 1..2") || strings.Contains(out, "interrupted") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want a sound log with slots 1..2", code, out, errOut)
	}
}
