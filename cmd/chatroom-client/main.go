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
// Its certificates are those of --tls-dir, or of data/tls (where paxos up
// and chatroom-server put theirs) without it; --insecure uses none. They
// are read at each connect, and the connection to the client port runs
// TLS with the directory's client certificate.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	stdnet "net"
	"os"
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
	if err := cmdflags.ClusterID("--cluster-id", c.ClusterID); err != nil {
		return err
	}
	return c.tls().Check()
}

func (c *cli) tls() cmdflags.TLS { return cmdflags.TLS{Dir: c.TLSDir, Insecure: c.Insecure} }

func main() {
	var c cli
	kong.Parse(&c, kong.Name("chatroom-client"), kong.Description("The paxos-go chat room client."))
	r := &repl{cli: c, out: os.Stdout, errOut: os.Stderr}
	r.run(os.Stdin)
}

type repl struct {
	cli
	out    io.Writer
	errOut io.Writer // notes for a person, apart from the REPL's answers; may be nil
	client *chatroom.Client
	port   int
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
		if r.client != nil {
			r.client.Close()
			r.client = nil
		}
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

func (r *repl) connect(arg string) {
	port, err := strconv.Atoi(arg)
	if err != nil || port < 1 || port > 65535 {
		r.fail("invalid port %s", arg)
		return
	}
	// The certificates are read now, not at start, so that a client
	// started before its servers finds those the servers make.
	b, err := r.tls().ClientBundle(cmdflags.DefaultTLSDir, r.ClusterID)
	if err != nil {
		r.fail("%v", err)
		return
	}
	addr := stdnet.JoinHostPort(r.Host, strconv.Itoa(port))
	opts := chatroom.Options{ClusterID: r.ClusterID}
	if b != nil {
		opts.TLS = certs.ClientConfig(b)
	}
	// A status request tells that a server of this cluster answers there,
	// through the same TLS as the puts will take. (A bare TCP connection
	// closed at once, as this used to be, made the server log a refused
	// handshake at every connect.)
	probe := client.New([]string{addr}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = probe.Status(ctx)
	cancel()
	probe.Close()
	if err != nil {
		r.fail("failed to connect to server at port %d: %v", port, err)
		return
	}
	if r.client != nil {
		r.client.Close()
	}
	r.client = chatroom.NewClient([]string{addr}, opts)
	r.port = port
	r.respond("connected to server at port %d", port)
}

func (r *repl) put(msg string) {
	if r.client == nil {
		r.fail("not connected to a server")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	n, err := r.client.Put(ctx, msg)
	if err != nil {
		r.fail("message not committed: %v", err)
		return
	}
	r.respond("message committed (log length %d)", n)
}

func (r *repl) get() {
	if r.client == nil {
		r.fail("not connected to a server")
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
