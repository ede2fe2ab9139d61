package facts

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	base := t.TempDir()
	st, err := Open(base, "tr-x")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.All(); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	v := &VPN{Name: "work", Type: "openvpn", Device: "tun0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24")},
		Servers: []Endpoint{{Addr: netip.MustParseAddr("198.51.100.2"), Port: 1194, Proto: "udp"}}}
	if err := st.Put(v); err != nil {
		t.Fatal(err)
	}
	got, err := st.All()
	if err != nil || got["work"] == nil || got["work"].Device != "tun0" || got["work"].Servers[0].Port != 1194 {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if entries, _ := os.ReadDir(st.Dir()); len(entries) != 1 {
		t.Errorf("a temporary file was left: %v", entries)
	}
	if err := st.Remove("work"); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove("work"); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if _, err := Open(base, "../etc"); err == nil {
		t.Error("a namespace name with a slash was accepted")
	}
	if err := st.Put(&VPN{Name: "../x", Device: "tun0"}); err == nil {
		t.Error("a vpn name with a slash was accepted")
	}
}

func TestStoreRefusesBadFiles(t *testing.T) {
	st, _ := Open(t.TempDir(), "")
	os.MkdirAll(st.Dir(), 0o755)
	for name, body := range map[string]string{
		"a.json": `{"name":"a","type":"openvpn","device":"tun0; reboot"}`,
		"b.json": `{"name":"c","type":"openvpn","device":"tun0"}`,
		"d.json": `{"name":"d","type":"openvpn","device":"tun0","extra":1}`,
		"e.json": `{"name":"e","type":"openvpn","device":"tun0","gateway4":"2001:db8::1"}`,
	} {
		os.WriteFile(filepath.Join(st.Dir(), name), []byte(body), 0o644)
		_, err := st.All()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s %s: got %v, want an error naming the file", name, body, err)
		}
		os.Remove(filepath.Join(st.Dir(), name))
	}
}
