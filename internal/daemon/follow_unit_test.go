package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/engine"
)

// TestFollowConfigWaitsForAWholeFile: the daemon does not follow a
// config file written a moment ago (an editor or script writing in place
// shows it half written), nor an empty one (that would take the kill
// switch down); it follows a settled, valid edit, and keeps the config in
// force for one that does not load.
func TestFollowConfigWaitsForAWholeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tunroute.yaml")
	good, err := os.ReadFile("../../examples/dual-identity.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	write(good, time.Hour)
	e := engine.New("", path, dir)
	cfg, err := e.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{e: e, log: testLog(t), cfg: cfg, cfgStamp: stampOf(path)}

	if again := d.followConfig(); !again.IsZero() || d.cfg != cfg {
		t.Fatalf("an unchanged file: again %v, config replaced %v", again, d.cfg != cfg)
	}
	write(nil, 0) // truncated, being written
	if again := d.followConfig(); again.IsZero() || time.Until(again) > configSettle || d.cfg != cfg {
		t.Fatalf("a file written just now: again %v (want within %v), config replaced %v", again, configSettle, d.cfg != cfg)
	}
	write(nil, time.Second) // left empty
	if again := d.followConfig(); !again.IsZero() || d.cfg != cfg {
		t.Fatalf("an empty file: again %v, config replaced %v", again, d.cfg != cfg)
	}
	write([]byte("identities: [nonsense\n"), time.Second)
	if again := d.followConfig(); !again.IsZero() || d.cfg != cfg || d.status.LastError == "" {
		t.Fatalf("a file that does not load: again %v, config replaced %v, error %q", again, d.cfg != cfg, d.status.LastError)
	}
	write(append(good, '\n'), time.Second)
	if again := d.followConfig(); !again.IsZero() || d.cfg == cfg {
		t.Fatalf("a settled valid edit: again %v, followed %v", again, d.cfg != cfg)
	}
}
