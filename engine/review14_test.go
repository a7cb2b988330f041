package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// bareNode is a Node with just what submit, forget and the waiters need:
// no loop, so a queued command stays queued until the test answers it.
func bareNode() *Node {
	n := &Node{waiters: map[cmdKey]*waiter{}, cfg: Config{MaxCommandBytes: 1 << 20}}
	ch := make(chan struct{})
	n.leaderCh.Store(&ch)
	return n
}

// answer answers the waiters of k as apply does.
func (n *Node) answerForTest(k cmdKey, r result) bool {
	n.mu.Lock()
	w, ok := n.waiters[k]
	delete(n.waiters, k)
	n.mu.Unlock()
	if ok {
		for _, fn := range w.notify {
			(*fn)(r)
		}
	}
	return ok
}

// Two callers wait for one command (a retry while the first attempt still
// waits, on the same node): the first giving up must not take the
// second's waiter with it, or the second never hears the outcome and
// waits until its own context ends (forever with context.Background), though
// the command was applied.
func TestReview14ForgetKeepsOtherWaiters(t *testing.T) {
	n := bareNode()
	k := cmdKey{7, 1}
	second := make(chan error, 1)
	go func() {
		_, err := n.Submit(context.Background(), 7, 1, []byte("x"))
		second <- err
	}()
	waitFor(t, 2*time.Second, "the second caller queued", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.waiters[k] != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := n.Submit(ctx, 7, 1, []byte("x")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first caller: %v, want ErrTimeout", err)
	}
	fut := n.SubmitAsync(7, 1, 0, []byte("x"))
	fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer fcancel()
	if _, err := fut.Wait(fctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("future: %v, want ErrTimeout", err)
	}
	if !n.answerForTest(k, result{Response: []byte("ok")}) {
		t.Fatal("the waiter of the caller still waiting is gone: it will never hear the outcome")
	}
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("second caller: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("second caller still waiting after its command was answered")
	}
}
