package harness

import (
	"io"
	stdnet "net"
	"sync"
	"time"
)

// proxy carries one directed link between two servers: server i dials
// the proxy of link (i, j) to reach server j. Cutting it closes its
// connections and refuses new ones, so messages from i to j stop (the
// connection from j to i is another proxy's).
type proxy struct {
	ln     stdnet.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[stdnet.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(target string) (*proxy, error) {
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[stdnet.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) serve(c stdnet.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	t, err := stdnet.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		t.Close()
		return
	}
	p.conns[t] = struct{}{}
	p.mu.Unlock()
	defer p.drop(t)
	done := make(chan struct{}, 2)
	go func() { io.Copy(t, c); done <- struct{}{} }()
	go func() { io.Copy(c, t); done <- struct{}{} }()
	<-done
	c.Close()
	t.Close()
	<-done
}

func (p *proxy) drop(c stdnet.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// setCut cuts or restores the link.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}
