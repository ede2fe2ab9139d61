package kernel

import (
	"errors"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WatchNamespace: a named namespace appeared (Deleted false) or its name
// went away (`ip netns del`) under NetnsDir. The namespace itself may live
// on while something holds it (a watcher of its events does: the one
// told of its deletion should close it).
const WatchNamespace WatchKind = "namespace"

// NamespaceWatcher reports names created and deleted under NetnsDir.
type NamespaceWatcher struct {
	f    *os.File
	stop chan struct{}
	done chan struct{}
}

// WatchNamespaces sends a WatchNamespace event for every name created or
// deleted under NetnsDir until Close.
func WatchNamespaces(events chan<- WatchEvent) (*NamespaceWatcher, error) {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, NetnsDir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &NamespaceWatcher{f: os.NewFile(uintptr(fd), "inotify"), stop: make(chan struct{}), done: make(chan struct{})}
	go w.read(events)
	return w, nil
}

func (w *NamespaceWatcher) read(events chan<- WatchEvent) {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		now := time.Now()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if name == "" {
				continue
			}
			deleted := ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0
			select {
			case events <- WatchEvent{Kind: WatchNamespace, Netns: name, Deleted: deleted, At: now}:
			case <-w.stop:
				return
			}
		}
	}
}

// Close stops the watcher.
func (w *NamespaceWatcher) Close() error {
	close(w.stop)
	err := w.f.Close()
	<-w.done
	return err
}
