package chatroom

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/paxos-go/paxos/engine"
)

func TestRoomPagesAndSnapshot(t *testing.T) {
	r := New()
	for i := 0; i < 10; i++ {
		r.Apply(uint64(i+1), PutCommand(fmt.Sprint("m", i)))
	}
	p, err := DecodePage(r.Query(GetCommand(7, 0)))
	if err != nil || p.Total != 10 || p.First != 7 || !slices.Equal(p.Messages, []string{"m7", "m8", "m9"}) {
		t.Fatalf("page from 7: %+v %v", p, err)
	}
	p, _ = DecodePage(r.Query(GetCommand(0, 5)))
	if len(p.Messages) != 2 { // "m0" and "m1" fit in 5 bytes, "m2" does not
		t.Fatalf("page of at most 5 bytes: %+v", p)
	}
	p, _ = DecodePage(r.Query(GetCommand(99, 0)))
	if p.Total != 10 || len(p.Messages) != 0 {
		t.Fatalf("page past the end: %+v", p)
	}
	var buf bytes.Buffer
	if err := r.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r2 := New()
	if err := r2.Restore(&buf); err != nil || !slices.Equal(r2.Messages(), r.Messages()) {
		t.Fatalf("restored %v, %v", r2.Messages(), err)
	}
	for _, bad := range [][]byte{nil, {'G'}, {'X', 1, 1}, {'G', 1, 1, 1}} {
		if got := r.Query(bad); got != nil {
			t.Errorf("Query(%x) = %x, want nothing", bad, got)
		}
	}
}

// TestClientExactlyOnce runs a one-replica room and a client through it.
func TestClientExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	room := New()
	addr := "127.0.0.1:0"
	n, err := engine.Start(engine.Config{ID: 0, Peers: map[uint64]string{0: addr}, DataDir: filepath.Join(dir, "0"),
		ClientAddr: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond, Insecure: true}, room)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := NewClient([]string{n.ClientAddr().String()}, Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if l, err := c.Put(ctx, fmt.Sprint("hello ", i)); err != nil || l != uint64(i) {
			t.Fatalf("Put %d: length %d, %v", i, l, err)
		}
	}
	got, err := c.Get(ctx)
	if err != nil || !slices.Equal(got, []string{"hello 1", "hello 2", "hello 3"}) {
		t.Fatalf("Get: %v, %v", got, err)
	}
}
