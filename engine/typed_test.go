package engine

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"
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
