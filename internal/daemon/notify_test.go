package daemon

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify: under a service manager (NOTIFY_SOCKET,
// WATCHDOG_USEC), tunroute run says READY=1 once the first apply is done,
// then sends keep-alives; SIGHUP reloads (RELOADING=1, READY=1).
func TestSystemdNotify(t *testing.T) {
	w := newWorld(t, "sd")
	sock := filepath.Join(w.dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd := exec.Command(binary(t), "--run-dir", w.runDir, "run", "--netns", w.top, "-c", w.cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var got []string
	buf := make([]byte, 512)
	sentHUP := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		msg := string(buf[:n])
		got = append(got, msg)
		if msg == "READY=1" && !sentHUP {
			// The kernel holds the config's objects already.
			if ok, plan := w.inSync(); !ok {
				t.Fatalf("READY=1 before the first apply was done:\n%s", plan)
			}
			cmd.Process.Signal(syscall.SIGHUP)
			sentHUP = true
		}
		all := strings.Join(got, " ")
		if strings.Count(all, "WATCHDOG=1") >= 3 && strings.Contains(all, "RELOADING=1") && strings.Count(all, "READY=1") >= 2 {
			t.Logf("notifications: %v", got)
			return
		}
	}
	t.Fatalf("notifications: %v\n%s", got, log.String())
}
