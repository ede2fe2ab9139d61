package daemon

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerCredentials: a user other than root is refused by the daemon
// even when the socket's file mode would let it connect (the run
// directory and the socket opened up on purpose).
func TestPeerCredentials(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv")
	}
	w := newWorld(t, "pc")
	open, err := os.MkdirTemp("", "tr-dn-pc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	w.runDir = filepath.Join(open, "run")
	w.daemonRun(Options{Log: testLog(t), Listen: true})
	bin := filepath.Join(open, "tunroute")
	copyFile(t, binary(t), bin)
	sock := SocketPath(w.runDir, w.top)
	for _, p := range []string{open, w.runDir, filepath.Dir(sock), bin} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(sock, 0o666)
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "--run-dir", w.runDir, "reload", "--netns", w.top).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "uid 65534 may not talk to tunroute run") {
		t.Fatalf("a non-root user: %v %s", err, out)
	}
	if st, err := Ask(w.runDir, w.top, "status"); err != nil || st.Checks == 0 {
		t.Fatalf("root: %v %+v", err, st)
	}
}

func copyFile(tb testing.TB, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}
