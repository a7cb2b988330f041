package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/internal/clientproto"
)

// A server's definite refusal reaches a SubmitAsync Future as the same
// error Submit returns: permanent (IsPermanent), and ErrBadRequest for a
// request the server refused as malformed.
func TestReview14AsyncRefusalsArePermanent(t *testing.T) {
	for _, code := range []uint8{clientproto.CodeBadSequence, clientproto.CodeExpired, clientproto.CodeStale, clientproto.CodeBadRequest} {
		s := newFakeServer(t, func(req clientproto.Request) (clientproto.Response, bool) {
			return clientproto.Response{Status: clientproto.StatusError, Code: code, Message: "refused"}, true
		})
		c := client.New([]string{s.ln.Addr().String()}, client.Options{ClusterID: "test"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := c.SubmitAsync(ctx, []byte("x")).Wait(ctx)
		if !client.IsPermanent(err) || ctx.Err() != nil {
			t.Errorf("code %d: %v; want a permanent error at once", code, err)
		}
		want := clientproto.CodeErrors[code]
		if want == nil {
			want = client.ErrBadRequest
		}
		if !errors.Is(err, want) {
			t.Errorf("code %d: %v, want %v", code, err, want)
		}
		cancel()
		c.Close()
	}
}
