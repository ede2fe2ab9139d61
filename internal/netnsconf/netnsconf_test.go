package netnsconf

import (
	"net/netip"
	"testing"
)

func TestResolvConf(t *testing.T) {
	got := ResolvConf("private", []netip.Addr{netip.MustParseAddr("10.8.0.1"), netip.MustParseAddr("2001:db8::53")})
	want := "# written by tunroute for domain private; tunroute down removes it\nnameserver 10.8.0.1\nnameserver 2001:db8::53\n"
	if string(got) != want {
		t.Errorf("got:\n%s", got)
	}
	if !Ours(got) {
		t.Error("a file tunroute renders is not recognised as its own")
	}
	if Ours([]byte("nameserver 192.0.2.53\n")) || Ours([]byte{}) {
		t.Error("a foreign file is taken for tunroute's")
	}
	if p := ResolvConfPath("/etc/netns", "private"); p != "/etc/netns/private/resolv.conf" {
		t.Errorf("path %s", p)
	}
}
