package harness

import (
	"io"
	stdnet "net"
	"sync"
	"time"
)

// front is the one address through which every server reaches server dst:
// the address the cluster's configuration holds for dst, so that all
// replicas agree on it. It forwards each connection to dst's real peer
// port unless the link from the server that dialled it is cut. It tells
// who dialled from the kernel's socket table (see run.dialler), so that
// each directed link (src, dst) can be cut on its own although all of
// them share one address: cutting (src, dst) closes src's connections to
// dst and refuses new ones, so messages from src to dst stop (those from
// dst to src travel on dst's connections, through src's front).
type front struct {
	ln     stdnet.Listener
	dst    int
	target string
	// dialler says which server holds the other end of a connection
	// from 127.0.0.1:fromPort to 127.0.0.1:toPort; ok false if none does.
	dialler func(fromPort, toPort int) (src int, ok bool)

	mu    sync.Mutex
	cut   map[int]bool        // the sources whose link to dst is cut
	conns map[stdnet.Conn]int // open connections, both ends, by source
	wg    sync.WaitGroup
}

func newFront(dst int, target string, dialler func(fromPort, toPort int) (int, bool)) (*front, error) {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{ln: ln, dst: dst, target: target, dialler: dialler, cut: map[int]bool{}, conns: map[stdnet.Conn]int{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *front) addr() string { return f.ln.Addr().String() }

func (f *front) port() int { return f.ln.Addr().(*stdnet.TCPAddr).Port }

func (f *front) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.serve(c)
	}
}

// serve finds who dialled c and, unless that link is cut, forwards it.
// A connection from no server the harness runs is closed.
func (f *front) serve(c stdnet.Conn) {
	defer f.wg.Done()
	src, ok := f.dialler(c.RemoteAddr().(*stdnet.TCPAddr).Port, f.port())
	if !ok || !f.track(c, src) {
		c.Close()
		return
	}
	defer f.drop(c)
	t, err := stdnet.DialTimeout("tcp", f.target, time.Second)
	if err != nil {
		return
	}
	if !f.track(t, src) {
		t.Close()
		return
	}
	defer f.drop(t)
	done := make(chan struct{}, 2)
	go func() { io.Copy(t, c); done <- struct{}{} }()
	go func() { io.Copy(c, t); done <- struct{}{} }()
	<-done
	c.Close()
	t.Close()
	<-done
}

// track records an open connection of src, unless its link is cut.
func (f *front) track(c stdnet.Conn, src int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut[src] || f.cut[closedSource] {
		return false
	}
	f.conns[c] = src
	return true
}

func (f *front) drop(c stdnet.Conn) {
	c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// closedSource marks a front that is closing: it refuses everyone.
const closedSource = -1

// setCut cuts or restores the link from src.
func (f *front) setCut(src int, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !cut {
		delete(f.cut, src)
		return
	}
	f.cut[src] = true
	for c, s := range f.conns {
		if s == src || src == closedSource {
			c.Close()
		}
	}
}

// heal restores every link to dst.
func (f *front) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.cut)
}

func (f *front) close() {
	f.ln.Close()
	f.setCut(closedSource, true)
	f.wg.Wait()
}
