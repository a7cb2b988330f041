// Command chatroom-client is the chat room's interactive client, with the
// verbs and prompt of the original project. It reads commands from its
// standard input, a terminal or a pipe:
//
//	connect <port> | c <port>   connect to the server at 127.0.0.1:<port>
//	disconnect | d              drop the connection
//	put <message> | p <message> store a message; waits until it is committed
//	get | g                     print the whole chat log
//	help | h                    print the commands
//
// It exits at the end of its input.
//
// Given the cluster (--servers HOST:PORT,...), it needs no connect: put
// and get go to the cluster, and when the server they talk to dies, to
// another (the Go client follows the servers' redirects to the leader and
// retries elsewhere). connect <port> then names the server to try first.
// Without --servers it knows only the server of the last connect.
//
// A put that gets no answer within --timeout has an unknown outcome: the
// message may or may not have been committed. Putting the same message
// next retries it as the same command (same client ID and sequence
// number), which the cluster stores once whichever happened; get shows
// whether it is there.
//
// Its certificates are those of --tls-dir, or of data/tls (where paxos up
// and chatroom-server put theirs) without it; --insecure uses none. They
// are read at each connect, and the connection to the client port runs
// TLS with the directory's client certificate.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/paxos-go/paxos/chatroom"
	"github.com/paxos-go/paxos/client"
	"github.com/paxos-go/paxos/cmd/internal/cmdflags"
	"github.com/paxos-go/paxos/net/certs"
)

type cli struct {
	ID        uint64        `short:"i" help:"A name for this client in the server's logs; its session ID is random."`
	Host      string        `default:"127.0.0.1" help:"The host the servers listen on."`
	ClusterID string        `name:"cluster-id" default:"chatroom" help:"The cluster's name."`
	Timeout   time.Duration `default:"30s" help:"How long put and get wait for an answer."`
	Servers   []string      `sep:"," placeholder:"HOST:PORT,..." help:"The cluster's client addresses: put and get need no connect, and go to another server when one dies (connect <port> names the one to try first)."`
	TLSDir    string        `name:"tls-dir" placeholder:"DIR" help:"The cluster's certificates, as paxos certs writes them (ca.pem, client.pem, client-key.pem). Default: data/tls, which paxos up and chatroom-server make."`
	Insecure  bool          `help:"Use no certificates."`
}

// Validate refuses a bad command line (kong calls it while parsing).
func (c *cli) Validate() error {
	if err := cmdflags.Positive("--timeout", c.Timeout); err != nil {
		return err
	}
	if c.Host == "" {
		return fmt.Errorf("--host: empty")
	}
	for _, addr := range c.Servers {
		if err := cmdflags.HostPort("--servers", addr); err != nil {
			return err
		}
	}
	if err := cmdflags.ClusterID("--cluster-id", c.ClusterID); err != nil {
		return err
	}
	return c.tls().Check()
}

func (c *cli) tls() cmdflags.TLS { return cmdflags.TLS{Dir: c.TLSDir, Insecure: c.Insecure} }

func main() {
	var c cli
	kong.Parse(&c, kong.Name("chatroom-client"), kong.Description("The paxos-go chat room client."))
	newREPL(c, os.Stdout, os.Stderr).run(os.Stdin)
}

type repl struct {
	cli
	out    io.Writer
	errOut io.Writer // notes for a person, apart from the REPL's answers; may be nil

	// session is this REPL's client ID (0 until its first client draws
	// one at random), and seq the sequence number of its last put: both
	// outlive a connect, so that a put retried through another server is
	// still the same command.
	session, seq uint64
	// pending is the last put if its outcome is unknown (it timed out): a
	// put of the same message next reuses its sequence number.
	pending *pendingPut
	client  *chatroom.Client
	// disconnected: the user said disconnect, so put and get do not
	// reconnect to --servers by themselves.
	disconnected bool
}

// pendingPut is a put whose outcome is unknown.
type pendingPut struct {
	msg string
	seq uint64
}

func newREPL(c cli, out, errOut io.Writer) *repl {
	return &repl{cli: c, out: out, errOut: errOut}
}

const usage = `+---------------------------------------------------------+
| connect <port>   (c)  connect to the server at a port   |
| disconnect       (d)  drop the connection               |
| put <message>    (p)  store a message (waits to commit) |
| get              (g)  print the chat log                |
| help             (h)  print this help                   |
+---------------------------------------------------------+`

func (r *repl) run(in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), chatroom.MaxMessageBytes+1024)
	for {
		fmt.Fprint(r.out, "> ")
		if !sc.Scan() {
			fmt.Fprintln(r.out)
			break
		}
		r.do(strings.TrimSpace(sc.Text()))
	}
	if r.client != nil {
		r.client.Close()
	}
}

func (r *repl) respond(format string, args ...any) {
	fmt.Fprintf(r.out, "[RESPONSE]: "+format+"\n", args...)
}

func (r *repl) fail(format string, args ...any) {
	fmt.Fprintf(r.out, "[ERROR]: "+format+"\n", args...)
}

func (r *repl) do(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch {
	case (verb == "connect" || verb == "c") && arg != "":
		r.connect(arg)
	case (verb == "disconnect" || verb == "d") && arg == "":
		r.drop()
		r.disconnected = true
	case (verb == "get" || verb == "g") && arg == "":
		r.get()
	case (verb == "put" || verb == "p") && arg != "":
		r.put(arg)
	case (verb == "help" || verb == "h") && arg == "":
		fmt.Fprintln(r.out, usage)
	default:
		r.fail("could not parse command")
	}
}

// drop closes the client, if any.
func (r *repl) drop() {
	if r.client != nil {
		r.client.Close()
		r.client = nil
	}
}

// newClient returns a client of the servers at addrs, tried in that
// order, in this REPL's session. The certificates are read now, not at
// start, so that a client started before its servers finds those the
// servers make.
func (r *repl) newClient(addrs []string) (*chatroom.Client, error) {
	b, err := r.tls().ClientBundle(cmdflags.DefaultTLSDir, r.ClusterID)
	if err != nil {
		return nil, err
	}
	opts := chatroom.Options{ClusterID: r.ClusterID, ClientID: r.session}
	if b != nil {
		opts.TLS = certs.ClientConfig(b)
	}
	c := chatroom.NewClient(addrs, opts)
	r.session = c.ID()
	c.SetSeq(r.seq)
	return c, nil
}

// connect makes the server at port the one put and get try first, after
// checking that a server of the cluster answers there; the others of
// --servers stay behind it, for when it dies.
func (r *repl) connect(arg string) {
	port, err := strconv.Atoi(arg)
	if err != nil || port < 1 || port > 65535 {
		r.fail("invalid port %s", arg)
		return
	}
	addr := stdnet.JoinHostPort(r.Host, strconv.Itoa(port))
	addrs := []string{addr}
	for _, a := range r.Servers {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	c, err := r.newClient(addrs)
	if err != nil {
		r.fail("%v", err)
		return
	}
	// A status request goes to addrs[0] only, through the TLS and cluster
	// handshakes: it finds a wrong port, cluster or certificate now rather
	// than at the first put; and its connection is the one the first put
	// uses.
	ctx, cancel := context.WithTimeout(context.Background(), min(r.Timeout, 5*time.Second))
	defer cancel()
	if _, err := c.Status(ctx); err != nil {
		c.Close()
		r.fail("failed to connect to server at port %d: %v", port, err)
		return
	}
	r.drop()
	r.client, r.disconnected = c, false
	r.respond("connected to server at port %d", port)
}

// ready makes sure there is a client to talk to, making one of --servers
// if there is none yet (and the user did not disconnect); it says why not
// otherwise.
func (r *repl) ready() bool {
	if r.client != nil {
		return true
	}
	if len(r.Servers) == 0 || r.disconnected {
		r.fail("not connected to a server")
		return false
	}
	c, err := r.newClient(r.Servers)
	if err != nil {
		r.fail("%v", err)
		return false
	}
	r.client = c
	return true
}

func (r *repl) put(msg string) {
	if !r.ready() {
		return
	}
	retry := r.pending != nil && r.pending.msg == msg
	if retry {
		// The same command again: the cluster stores it once, whether or
		// not the put that timed out was stored.
		r.client.SetSeq(r.pending.seq - 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	n, err := r.client.Put(ctx, msg)
	r.seq = r.client.Seq()
	r.pending = nil
	switch {
	case err == nil:
		r.respond("message committed (log length %d)", n)
	case errors.Is(err, client.ErrTimeout):
		// Not "not committed": the put may have been committed, and its
		// answer lost, or be committed still.
		r.pending = &pendingPut{msg: msg, seq: r.seq}
		r.fail("outcome unknown: no answer within %v, so the message may or may not be committed (%v); "+
			"put the same message again to retry it, and it is stored once either way, or get to see the log", r.Timeout, err)
		if len(r.Servers) == 0 && r.errOut != nil {
			fmt.Fprintln(r.errOut, "note: this client knows one server; --servers HOST:PORT,... gives it the cluster, so that a put goes to another server when one dies")
		}
	case errors.Is(err, client.ErrResponseNotKept):
		// A retry of a put that was executed, whose answer is gone.
		r.respond("message committed (log length unknown: %v)", err)
	default:
		// The cluster refused it (too large, session expired, ...), or
		// no server can have run it: it is not stored.
		r.fail("message not committed: %v", err)
	}
}

func (r *repl) get() {
	if !r.ready() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	msgs, err := r.client.Get(ctx)
	if err != nil {
		r.fail("failed to get the log: %v", err)
		return
	}
	quoted := make([]string, len(msgs))
	for i, m := range msgs {
		quoted[i] = strconv.Quote(m)
	}
	r.respond("[%s]", strings.Join(quoted, ", "))
}
