package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

// TestControlSocket: status and reload through the socket; a reload of a
// broken config is refused with the place of the error and changes
// nothing; a good one is applied.
func TestControlSocket(t *testing.T) {
	w := newWorld(t, "cs")
	w.daemonRun(Options{Log: testLog(t), Listen: true})
	fi, err := os.Stat(SocketPath(w.runDir, w.top))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	st, err := Ask(w.runDir, w.top, "status")
	if err != nil || !st.InSync || len(st.Watching) != 2 {
		t.Fatalf("status: %+v %v", st, err)
	}
	// tunroute status --json carries the daemon's report.
	bin, err := testns.Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "status", "--json", "--netns", w.top, "--run-dir", w.runDir, "-c", w.cfgPath).CombinedOutput()
	var rep struct {
		Daemon *Status `json:"daemon"`
	}
	if err != nil || json.Unmarshal(out, &rep) != nil || rep.Daemon == nil || !rep.Daemon.InSync {
		t.Fatalf("tunroute status --json: %v\n%s", err, out)
	}
	good, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(w.cfgPath, append(good, []byte("routes: [nonsense\n")...), 0o644)
	if _, err := Ask(w.runDir, w.top, "reload"); err == nil || !strings.Contains(err.Error(), w.cfgPath+":") {
		t.Fatalf("reload of a broken config: %v", err)
	}
	if ok, plan := w.inSyncWith(good); !ok {
		t.Fatalf("a failed reload changed something:\n%s", plan)
	}
	os.WriteFile(w.cfgPath, []byte(strings.Replace(string(good), "198.51.100.0/24,", "198.51.100.0/24, 203.0.113.0/24,", 1)), 0o644)
	if _, err := Ask(w.runDir, w.top, "reload"); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command("ip", "-n", w.top, "route", "show", "203.0.113.0/24").CombinedOutput()
	if !strings.Contains(string(out), "via 192.0.2.1") {
		t.Fatalf("the reloaded config's route is not there: %q", out)
	}
	if _, err := Ask(w.runDir, w.top, "bogus"); err == nil {
		t.Fatal("an unknown request is accepted")
	}
}

// inSyncWith plans with the config text cfg.
func (w *world) inSyncWith(cfg []byte) (bool, string) {
	cur, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(w.cfgPath, cfg, 0o644)
	defer os.WriteFile(w.cfgPath, cur, 0o644)
	return w.inSync()
}
