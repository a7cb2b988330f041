package memnet

import "testing"

func TestMemNetwork(t *testing.T) {
	n := NewMemNetwork()
	a, b := n.Transport(1), n.Transport(2)
	a.Send(2, []byte("x"))
	if got := <-b.Receive(); got[0].From != 1 || string(got[0].Payload) != "x" {
		t.Fatalf("got %+v", got)
	}
	n.Cut(1, 2)
	a.Send(2, []byte("lost"))
	b.Send(1, []byte("one way"))
	if got := <-a.Receive(); string(got[0].Payload) != "one way" {
		t.Fatalf("got %+v", got)
	}
	select {
	case got := <-b.Receive():
		t.Fatalf("a cut link delivered %q", got[0].Payload)
	default:
	}
}
