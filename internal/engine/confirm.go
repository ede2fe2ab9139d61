package engine

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tunroute/tunroute/internal/netnsname"
)

// An apply waiting for confirmation listens on a socket in the runtime
// directory; `tunroute confirm` connects to it. A socket names the waiter
// by what it holds, not by a process name or pid a rename or a reuse could
// fake, and only who may write the runtime directory (root) can confirm.
const confirmRequest, confirmReply = "confirm\n", "confirmed\n"

func (e *Engine) confirmSocket() string {
	return filepath.Join(e.runDir(), "confirm", netnsname.Name(e.Netns).Key()+".sock")
}

// ConfirmWaiter is an applied change waiting to be confirmed.
type ConfirmWaiter struct {
	ln *net.UnixListener
	// Confirmed receives once when `tunroute confirm` arrives.
	Confirmed <-chan struct{}
}

// WaitConfirm starts listening for a confirmation of the namespace's
// pending change. Close the waiter when done.
func (e *Engine) WaitConfirm() (*ConfirmWaiter, error) {
	p := e.confirmSocket()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another apply is waiting for confirmation on %s", p)
	}
	os.Remove(p) // a waiter that died left its socket
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	ch := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil && line == confirmRequest {
				_, err = c.Write([]byte(confirmReply))
				if err == nil {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
			c.Close()
		}
	}()
	return &ConfirmWaiter{ln: ln, Confirmed: ch}, nil
}

// Close stops waiting (and removes the socket).
func (w *ConfirmWaiter) Close() error { return w.ln.Close() }

// ErrNothingToConfirm means no apply of the namespace is waiting.
var ErrNothingToConfirm = errors.New("no apply is waiting for confirmation")

// Confirm tells the namespace's waiting apply to keep its change.
func (e *Engine) Confirm() error {
	p := e.confirmSocket()
	c, err := net.DialTimeout("unix", p, 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w in %s (%s): %v", ErrNothingToConfirm, e.Where(), p, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(confirmRequest)); err != nil {
		return fmt.Errorf("confirming through %s: %w", p, err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || reply != confirmReply {
		return fmt.Errorf("confirming through %s: the waiting apply did not acknowledge (%q, %v)", p, strings.TrimSpace(reply), err)
	}
	return nil
}
