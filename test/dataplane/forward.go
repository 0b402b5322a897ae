//go:build linux

package dataplane

import (
	"fmt"
	"io"
	"net"
)

// Forwarder makes a TCP address of this machine's loopback (the API
// server's) reachable at the same address inside a network namespace: it
// listens there and relays each connection to the loopback outside. Only
// that one address is relayed, so the enforcer reaches the API server and
// nothing else.
type Forwarder struct {
	ln net.Listener
}

// Forward relays addr inside h's namespace to addr on this machine.
func Forward(h *Host, addr string) (*Forwarder, error) {
	f := &Forwarder{}
	err := inNetns(h.Path, func() error {
		ln, err := net.Listen("tcp4", addr)
		f.ln = ln
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("forwarding %s into %s: %w", addr, h.NS, err)
	}
	go func() {
		for {
			in, err := f.ln.Accept()
			if err != nil {
				return
			}
			go f.relay(in, addr)
		}
	}()
	return f, nil
}

// relay copies between in and a new connection to addr (made outside the
// namespace: this goroutine runs on an ordinary thread) until either side
// closes.
func (f *Forwarder) relay(in net.Conn, addr string) {
	defer func() { _ = in.Close() }()
	out, err := net.Dial("tcp4", addr)
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Wake the other direction: whichever side closes first ends both.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// Close stops accepting. Open relays end when the enforcer that holds them
// is killed (Teardown), which comes first.
func (f *Forwarder) Close() {
	if f == nil {
		return
	}
	_ = f.ln.Close()
}
