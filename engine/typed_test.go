package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/internal/clientproto"
)

// chatCommand is a typed command as the seed's users write them.
type chatCommand struct {
	Client uint64
	Local  uint64
	Text   string
}

func (c chatCommand) ClientID() uint64 { return c.Client }
func (c chatCommand) LocalID() uint64  { return c.Local }

type chatResponse struct {
	Messages []string
}

type chatRoom struct{ messages []string }

func (r *chatRoom) Execute(slot uint64, cmd chatCommand) (chatResponse, bool) {
	if cmd.Text == "" {
		return chatResponse{}, false // a bare poll: no response
	}
	r.messages = append(r.messages, cmd.Text)
	return chatResponse{Messages: append([]string(nil), r.messages...)}, true
}

func (r *chatRoom) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(r.messages) }
func (r *chatRoom) Restore(rd io.Reader) error { return json.NewDecoder(rd).Decode(&r.messages) }

func TestTypedLayer(t *testing.T) {
	dir := t.TempDir()
	n, err := StartTyped[chatCommand, chatResponse](Config{
		ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: filepath.Join(dir, "1"),
		ElectionTimeout: 100 * time.Millisecond, Insecure: true,
	}, &chatRoom{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitFor(t, 10*time.Second, "leadership", func() bool { return n.Status().Role == "leader" })
	ctx := context.Background()
	resp, ok, err := n.Submit(ctx, chatCommand{Client: 9, Local: 1, Text: "hello"})
	if err != nil || !ok || len(resp.Messages) != 1 || resp.Messages[0] != "hello" {
		t.Fatalf("Submit: %+v %v %v", resp, ok, err)
	}
	resp, ok, err = n.Submit(ctx, chatCommand{Client: 9, Local: 2, Text: "world"})
	if err != nil || !ok || len(resp.Messages) != 2 {
		t.Fatalf("Submit: %+v %v %v", resp, ok, err)
	}
	// A command older than the client's last is refused.
	again, _, err := n.Submit(ctx, chatCommand{Client: 9, Local: 1, Text: "hello"})
	if err == nil {
		t.Fatalf("a command older than the client's last was accepted: %+v", again)
	}
	if _, ok, err := n.Submit(ctx, chatCommand{Client: 9, Local: 3}); err != nil || ok {
		t.Fatalf("a command without response: ok=%v err=%v", ok, err)
	}
}

// TestTypedRemote: client.Typed talks to a typed node through its client
// port; raw bytes that are not a command are answered, err == nil, with
// the encoded refusal, which client.Typed decodes into ErrBadCommand.
func TestTypedRemote(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	n, err := StartTyped[chatCommand, chatResponse](Config{
		ID: 1, Peers: map[uint64]string{1: "127.0.0.1:0"}, DataDir: filepath.Join(dir, "1"),
		ElectionTimeout: 100 * time.Millisecond, Insecure: true, ClientAddr: addr,
	}, &chatRoom{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	waitFor(t, 10*time.Second, "leadership", func() bool { return n.Status().Role == "leader" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client.New([]string{addr}, client.Options{})
	defer cl.Close()
	typed := client.NewTyped[chatCommand, chatResponse](cl)
	resp, ok, err := typed.Submit(ctx, chatCommand{Client: 9, Local: 1, Text: "remote"})
	if err != nil || !ok || len(resp.Messages) != 1 || resp.Messages[0] != "remote" {
		t.Fatalf("typed Submit: %+v %v %v", resp, ok, err)
	}
	if _, ok, err := typed.Submit(ctx, chatCommand{Client: 9, Local: 2}); err != nil || ok {
		t.Fatalf("a command without response: ok=%v err=%v", ok, err)
	}

	raw, err := cl.Submit(ctx, []byte("not msgpack"))
	if err != nil || len(raw) == 0 || raw[0] != clientproto.TypedBadCmd {
		t.Fatalf("raw bytes to a typed node: %q, %v; want err == nil and an encoded refusal", raw, err)
	}
	// A command of another type decodes as none of the node's.
	wrong := client.NewTyped[otherCommand, chatResponse](cl)
	if _, _, err := wrong.Submit(ctx, otherCommand{Who: "ten"}); !errors.Is(err, client.ErrBadCommand) || !errors.Is(err, ErrBadCommand) {
		t.Fatalf("a command of another type: %v, want ErrBadCommand", err)
	}
	if got := n.Node.sm.(typedMachine[chatCommand, chatResponse]).ex.(*chatRoom).messages; len(got) != 1 {
		t.Fatalf("the refused commands changed the state: %q", got)
	}
}

// otherCommand is not the node's command type: its first field, a
// string, does not decode as chatCommand's client ID.
type otherCommand struct {
	Who string
}

func (c otherCommand) ClientID() uint64 { return 10 }
func (c otherCommand) LocalID() uint64  { return 1 }
