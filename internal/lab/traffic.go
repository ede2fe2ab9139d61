package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// The echo protocol: the server accepts a TCP connection, writes one line
// "tunroute-lab-echo PEER\n" where PEER is the address:port it saw the
// connection come from, and closes it. No ICMP, nothing to send first.
const echoGreeting = "tunroute-lab-echo"

// EchoServer answers every TCP connection with the peer address it saw.
type EchoServer struct {
	NS    string
	Port  int
	name  string // the first word of every answer
	lns   []net.Listener
	wg    sync.WaitGroup
	close sync.Once
}

// ListenEcho starts an echo server in the named namespace on the port, for
// IPv4 and IPv6 on all addresses (two sockets, so that IPv4 peers are not
// seen as v4-mapped IPv6 addresses). It answers "tunroute-lab-echo PEER",
// what Probe expects.
func ListenEcho(nsName string, port int) (*EchoServer, error) {
	return ListenEchoAs(nsName, port, echoGreeting)
}

// ListenEchoAs is ListenEcho answering "NAME PEER": which of several
// servers answered, and where the connection came from.
func ListenEchoAs(nsName string, port int, name string) (*EchoServer, error) {
	e := &EchoServer{NS: nsName, Port: port, name: name}
	err := Do(nsName, func() error {
		for _, nw := range []string{"tcp4", "tcp6"} {
			ln, err := net.Listen(nw, fmt.Sprintf(":%d", port))
			if err != nil {
				return fmt.Errorf("echo server: %w", err)
			}
			e.lns = append(e.lns, ln)
		}
		return nil
	})
	if err != nil {
		for _, ln := range e.lns {
			ln.Close()
		}
		return nil, fmt.Errorf("netns %s: %w", nsName, err)
	}
	for _, ln := range e.lns {
		e.wg.Add(1)
		go e.serve(ln)
	}
	return e, nil
}

func (e *EchoServer) serve(ln net.Listener) {
	defer e.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s %s\n", e.name, c.RemoteAddr())
		}()
	}
}

// Close stops the server.
func (e *EchoServer) Close() {
	e.close.Do(func() {
		for _, ln := range e.lns {
			ln.Close()
		}
		e.wg.Wait()
	})
}

// ProbeTimeout bounds one Probe when the context has no earlier deadline.
const ProbeTimeout = 3 * time.Second

// Probe connects from the named namespace to dst, from the source address
// src if it is valid (like `ssh -b SRC`), and returns the address the echo
// server saw the connection come from.
func Probe(ctx context.Context, nsName string, src netip.Addr, dst netip.AddrPort) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	d := net.Dialer{}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	var c net.Conn
	// The socket is created (and connect started) on the namespace's
	// thread; the rest may run anywhere.
	err := Do(nsName, func() error {
		var err error
		c, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read from %s: %w", dst, err)
	}
	word, peer, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok || word != echoGreeting {
		return netip.Addr{}, fmt.Errorf("%s: not the lab's echo server: %q", dst, line)
	}
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: bad answer %q: %w", dst, line, err)
	}
	return ap.Addr().Unmap(), nil
}
