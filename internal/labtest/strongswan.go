package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CharonBin is strongSwan's IKE daemon, where Debian installs it.
const CharonBin = "/usr/lib/ipsec/charon"

// Charon is one strongSwan IKE daemon in a namespace, with a private
// /run (its pid file is hard-wired there) that still shows /run/netns.
// Its files (strongswan.conf, swanctl.conf, charon.log and the vici
// socket) are in Dir.
type Charon struct {
	NS, Dir string
	cmd     *exec.Cmd
}

// CharonConfig says how charon does ESP and what it routes.
type CharonConfig struct {
	// Libipsec: ESP in userspace over a TUN device, ipsec0 (the
	// kernel-libipsec plugin); else the kernel's own XFRM does it.
	Libipsec bool
	// InstallRoutes: charon routes the remote traffic selectors itself
	// (its table 220).
	InstallRoutes bool
}

// StartCharon starts charon in ns as cfg says, with its files in dir
// (made if missing), waits for its vici socket and loads swanctl (a
// swanctl.conf).
// Charon is killed when the test ends.
func StartCharon(t testing.TB, ns, dir string, cfg CharonConfig, swanctl string) *Charon {
	t.Helper()
	c := &Charon{NS: ns, Dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "netns"), 0o755); err != nil {
		t.Fatal(err)
	}
	plugins, installRoutes := "kernel-netlink", "no"
	if cfg.Libipsec {
		plugins = "kernel-libipsec kernel-netlink"
	}
	if cfg.InstallRoutes {
		installRoutes = "yes"
	}
	conf := fmt.Sprintf(`charon {
  load = random nonce aes sha1 sha2 hmac gmp kdf pem pkcs1 x509 pubkey %s socket-default vici updown
  install_routes = %s
  plugins {
    vici {
      socket = %s
    }
  }
  filelog {
    trdev {
      path = %s
      default = 1
      flush_line = yes
    }
  }
}
`, plugins, installRoutes, c.Vici(), c.log())
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(swanctl), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`mount --rbind /run/netns %[1]s/netns && mount -t tmpfs trdev-run /run && mkdir /run/netns && mount --move %[1]s/netns /run/netns && exec %[2]s`, dir, CharonBin)
	c.cmd = exec.Command("ip", "netns", "exec", ns, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"), "sh", "-c", script)
	// No Pdeathsig: it fires when the starting OS thread exits, and Go
	// ends threads (those locked into a namespace) at will. Cleanup kills
	// charon by its pid (ip netns exec, env and sh all exec into it).
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	// The vici socket appears when charon is ready; in a slow VM that
	// can take long.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "charon.vici")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(c.log())
			t.Fatalf("charon in %s did not start:\n%s", ns, log)
		}
	}
	c.Swanctl(t, "--load-all", "--file", filepath.Join(dir, "swanctl.conf"))
	return c
}

// Vici is the URI of charon's vici socket.
func (c *Charon) Vici() string { return "unix://" + filepath.Join(c.Dir, "charon.vici") }

func (c *Charon) log() string { return filepath.Join(c.Dir, "charon.log") }

// Swanctl runs swanctl with args against this charon and returns its
// output; the test fails, with charon's log, if swanctl does.
func (c *Charon) Swanctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("swanctl", append(args, "--uri", c.Vici())...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(c.log())
		t.Fatalf("swanctl %s: %v\n%s\ncharon.log:\n%s", strings.Join(args, " "), err, out, log)
	}
	return string(out)
}

// Kill ends charon with SIGKILL (the daemon dies; what it set up in the
// kernel stays, but a kernel-libipsec TUN device goes with it).
func (c *Charon) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		c.cmd = nil
	}
}
