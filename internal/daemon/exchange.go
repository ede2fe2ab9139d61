package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// exchange is one request to tunroute run over its socket: the clients
// (apply, plan, observe, hook) differ only in what their errors say was
// not done and in how long they wait.
type exchange struct {
	path     string
	line     []byte        // the JSON request, without its newline
	dial     time.Duration // how long connecting may take
	deadline time.Time     // for writing the request and reading the answer
	// unsent ends the error when the request never reached the daemon
	// ("; nothing was applied"); empty says nothing.
	unsent string
	// late is the whole error when the daemon does not answer before the
	// deadline; empty reports the read error as is.
	late string
}

// do sends the request and decodes the answer. A missing or refusing
// socket is ErrNotRunning; the answer's own verdicts are left to the caller.
func (x exchange) do() (*answer, error) {
	c, err := net.DialTimeout("unix", x.path, x.dial)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("tunroute run at %s: %w%s", x.path, err, x.unsent)
	}
	defer c.Close()
	c.SetDeadline(x.deadline)
	if _, err := c.Write(append(x.line, '\n')); err != nil {
		return nil, fmt.Errorf("tunroute run at %s: %w%s", x.path, err, x.unsent)
	}
	var a answer
	if err := json.NewDecoder(c).Decode(&a); err != nil {
		var ne net.Error
		if x.late != "" && errors.As(err, &ne) && ne.Timeout() {
			return nil, errors.New(x.late)
		}
		return nil, fmt.Errorf("tunroute run at %s: %w", x.path, err)
	}
	return &a, nil
}

// verdict is the daemon's refusal in an answer to apply, plan or observe.
func (a *answer) verdict() error {
	switch {
	case a.NotRunning:
		return ErrNotRunning
	case a.OtherConfig:
		return ErrOtherConfig
	case a.Error != "":
		return errors.New(a.Error)
	}
	return nil
}
