package daemon

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// Systemd's notify protocol (sd_notify(3)): one datagram per state to
// $NOTIFY_SOCKET ("@" names an abstract socket).

// Notifier sends states to systemd; a nil one (no $NOTIFY_SOCKET) drops them.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier reads $NOTIFY_SOCKET; nil when the service manager did not
// ask for notifications.
func NewNotifier() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends one state ("READY=1", "WATCHDOG=1", ...).
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// WatchdogInterval is how often systemd wants a keep-alive
// ($WATCHDOG_USEC for this process, halved); zero when it wants none.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// KeepAlive sends WATCHDOG=1 every interval while alive() holds, until ctx
// ends. alive lets a wedged daemon miss its keep-alives, so systemd
// restarts it.
func (n *Notifier) KeepAlive(ctx context.Context, interval time.Duration, alive func() bool) {
	if n == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				n.Notify("WATCHDOG=1")
			}
		}
	}
}
