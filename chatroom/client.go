package chatroom

import (
	"context"
	"errors"
	"fmt"

	"github.com/paxos-go/paxos/client"
)

// Client is a chat room client. It finds the leader, follows redirects,
// and retries a put with the same (ClientID, Seq) until it is answered, so
// that a message is stored exactly once. One put at a time per Client.
type Client struct {
	c    *client.Client
	read *client.Client // reads do not wait behind a put
}

// Options configure a Client: ClusterID, and TLS or TLSDir for servers
// whose client port runs TLS (the default: see client.Options).
type Options = client.Options

// NewClient returns a client of the servers whose client ports are addrs.
func NewClient(addrs []string, opts Options) *Client {
	read := opts
	read.ClientID = 0
	return &Client{c: client.New(addrs, opts), read: client.New(addrs, read)}
}

// ID returns the client's session ID.
func (c *Client) ID() uint64 { return c.c.ID() }

// Seq returns the sequence number of the client's last put.
func (c *Client) Seq() uint64 { return c.c.Seq() }

// SetSeq sets the sequence number of the client's last put. A new Client
// of the same session (Options.ClientID) resumes it with SetSeq; and after
// a put that timed out, SetSeq(Seq()-1) makes the next put the same
// (ClientID, Seq) again, so that putting the same message retries it: it
// is stored once, whether or not the put that timed out was. (Without it,
// the next put is a new command.)
func (c *Client) SetSeq(seq uint64) { c.c.SetSeq(seq) }

// Status asks the server the client talks to (or the first it would try)
// for its state, once, without redirects or retries: a way to check that a
// server of the cluster answers there.
func (c *Client) Status(ctx context.Context) (client.Status, error) {
	return c.c.Status(ctx)
}

// Put stores msg and returns once it is committed (and applied), with the
// log's length after it.
func (c *Client) Put(ctx context.Context, msg string) (uint64, error) {
	if len(msg) > MaxMessageBytes {
		return 0, fmt.Errorf("chatroom: message of %d bytes, the limit is %d", len(msg), MaxMessageBytes)
	}
	resp, err := c.c.Submit(ctx, PutCommand(msg))
	if err != nil {
		return 0, err
	}
	return DecodePut(resp)
}

// Get returns the whole log, read linearizably (by read index).
func (c *Client) Get(ctx context.Context) ([]string, error) {
	var all []string
	for {
		p, err := c.GetFrom(ctx, uint64(len(all)))
		if err != nil {
			return nil, err
		}
		all = append(all, p.Messages...)
		if uint64(len(all)) >= p.Total || len(p.Messages) == 0 {
			return all, nil
		}
	}
}

// GetFrom returns the messages from index from on (as many as fit in one
// page), read linearizably.
func (c *Client) GetFrom(ctx context.Context, from uint64) (Page, error) {
	resp, err := c.read.Query(ctx, GetCommand(from, 0))
	if err != nil {
		return Page{}, err
	}
	return DecodePage(resp)
}

// Close closes the client's connections.
func (c *Client) Close() error {
	return errors.Join(c.c.Close(), c.read.Close())
}
