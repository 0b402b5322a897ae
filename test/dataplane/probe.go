//go:build linux

package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The probe and listen helper: sockets made inside a host's network
// namespace from this process. A socket belongs to the network namespace of
// the thread that creates it, for its whole life; so a goroutine locks
// itself to a thread, moves that thread into the namespace and creates the
// socket there. That thread is never used again: the goroutine ends locked,
// and the Go runtime then retires the thread.

// probeTimeout bounds one probe: a connection that neither connects nor is
// refused within it counts as denied.
const probeTimeout = time.Second

// inNetns runs fn on a fresh OS thread inside the network namespace whose
// file is nsPath, and returns fn's error.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the thread is in another network namespace
		// and must die with this goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("opening %s: %w", nsPath, err)
			return
		}
		defer func() { _ = unix.Close(fd) }()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", nsPath, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Proto is a transport protocol a probe uses.
type Proto string

// The protocols probed.
const (
	TCP Proto = "TCP"
	UDP Proto = "UDP"
)

// Listeners serve a fixed set of ports of one host until Close. A TCP
// connection and a UDP datagram are both answered with the host's name and
// the port, so a probe knows that it reached the listener it meant.
type Listeners struct {
	closers []io.Closer
	wg      sync.WaitGroup
}

// Listen opens the ports on h's address (TCP and UDP alike for each port
// listed in tcp and udp) inside h's network namespace.
func Listen(h *Host, tcp, udp []int) (*Listeners, error) {
	l := &Listeners{}
	err := inNetns(h.Path, func() error {
		for _, port := range tcp {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(h.IP, uint16(port)).String())
			if err != nil {
				return err
			}
			l.closers = append(l.closers, ln)
			l.wg.Add(1)
			go l.serveTCP(ln, greeting(h, TCP, port))
		}
		for _, port := range udp {
			pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(h.IP, uint16(port)).String())
			if err != nil {
				return err
			}
			l.closers = append(l.closers, pc)
			l.wg.Add(1)
			go l.serveUDP(pc, greeting(h, UDP, port))
		}
		return nil
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("listening in %s: %w", h.Name, err)
	}
	return l, nil
}

// greeting is what the listener of h on port answers.
func greeting(h *Host, proto Proto, port int) string {
	return fmt.Sprintf("moat-dataplane %s %s:%d/%s\n", h.Name, h.IP, port, proto)
}

func (l *Listeners) serveTCP(ln net.Listener, hello string) {
	defer l.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = conn.Close() }()
			_ = conn.SetDeadline(time.Now().Add(probeTimeout))
			_, _ = io.WriteString(conn, hello)
		}()
	}
}

func (l *Listeners) serveUDP(pc net.PacketConn, hello string) {
	defer l.wg.Done()
	buf := make([]byte, 512)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo([]byte(hello), from)
	}
}

// Close stops every listener and waits for their loops to end.
func (l *Listeners) Close() {
	for _, c := range l.closers {
		_ = c.Close()
	}
	l.wg.Wait()
}

// Target is one destination of a probe: a host's port.
type Target struct {
	Host  *Host
	Port  int
	Proto Proto
}

func (t Target) String() string {
	return fmt.Sprintf("%s:%d/%s", t.Host.Name, t.Port, t.Proto)
}

// Probe opens a new connection (TCP) or sends a datagram (UDP) from src to
// dst, and reports whether dst's listener answered within probeTimeout. A
// refusal, an ICMP error, a timeout or an answer from anything but that
// listener is a denial; detail says which.
func Probe(ctx context.Context, src *Host, dst Target) (allowed bool, detail string) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var conn net.Conn
	err := inNetns(src.Path, func() error {
		// The socket is created (and the TCP handshake begun) on this
		// thread; waiting for the answer may happen anywhere.
		d := net.Dialer{LocalAddr: localAddr(src, dst.Proto)}
		c, err := d.DialContext(ctx, strings.ToLower(string(dst.Proto))+"4", netip.AddrPortFrom(dst.Host.IP, uint16(dst.Port)).String())
		conn = c
		return err
	})
	if err != nil {
		return false, shortError(err)
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if dst.Proto == UDP {
		if _, err := conn.Write([]byte("probe\n")); err != nil {
			return false, shortError(err)
		}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return false, shortError(err)
	}
	if want := greeting(dst.Host, dst.Proto, dst.Port); line != want {
		return false, fmt.Sprintf("unexpected answer %q", line)
	}
	return true, "answered"
}

// localAddr binds a probe to the source host's address, so that the
// enforcer sees exactly that source.
func localAddr(src *Host, proto Proto) net.Addr {
	if proto == UDP {
		return &net.UDPAddr{IP: src.IP.AsSlice()}
	}
	return &net.TCPAddr{IP: src.IP.AsSlice()}
}

// shortError names the way a probe failed: refused, unreachable, timeout.
func shortError(err error) string {
	var errno unix.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, unix.ETIMEDOUT), isTimeout(err):
		return "timeout"
	case errors.As(err, &errno):
		return errno.Error()
	default:
		return err.Error()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
