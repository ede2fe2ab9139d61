package netnsconf

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolvConf(t *testing.T) {
	d := Dir{Root: t.TempDir()}
	if err := d.WriteResolvConf("private", []netip.Addr{netip.MustParseAddr("10.8.0.1"), netip.MustParseAddr("2001:db8::53")}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(d.Root, "private", "resolv.conf"))
	want := "# written by tunroute for domain private; tunroute down removes it\nnameserver 10.8.0.1\nnameserver 2001:db8::53\n"
	if string(got) != want {
		t.Errorf("got:\n%s", got)
	}
	if err := d.Remove("private"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root, "private")); !os.IsNotExist(err) {
		t.Errorf("the empty directory should go too: %v", err)
	}
	// A file somebody else wrote is neither replaced nor removed.
	os.MkdirAll(filepath.Join(d.Root, "mine"), 0o755)
	os.WriteFile(filepath.Join(d.Root, "mine", "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
	if err := d.WriteResolvConf("mine", nil); err == nil || !strings.Contains(err.Error(), "not written by tunroute") {
		t.Errorf("overwrote a foreign file: %v", err)
	}
	d.Remove("mine")
	if b, _ := os.ReadFile(filepath.Join(d.Root, "mine", "resolv.conf")); string(b) != "nameserver 192.0.2.53\n" {
		t.Errorf("removed a foreign file")
	}
}
