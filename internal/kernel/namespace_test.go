package kernel

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// ipAddrOf is one address as `ip -j addr show` prints it.
type ipAddrOf struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	Address   string `json:"address"`
	PrefixLen int    `json:"prefixlen"`
	Broadcast string `json:"broadcast"`
	Scope     string `json:"scope"`
	NoDAD     bool   `json:"nodad"`
	Tentative bool   `json:"tentative"`
	ValidLft  uint32 `json:"valid_life_time"`
}

// ipLinkAddrs reads dev's addresses in ns with `ip -j addr show`, IPv6
// link-local ones left out, and whether dev is up.
func ipLinkAddrs(t *testing.T, ns, dev string) (addrs []ipAddrOf, up bool) {
	t.Helper()
	var links []struct {
		Flags    []string   `json:"flags"`
		AddrInfo []ipAddrOf `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(ipn(t, ns, "-j", "addr", "show", "dev", dev)), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j addr show dev %s in %s: %d links, %v", dev, ns, len(links), err)
	}
	for _, a := range links[0].AddrInfo {
		if a.Family == "inet6" && a.Scope == "link" {
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs, slices.Contains(links[0].Flags, "UP")
}

// MoveLink keeps a device's addresses (IPv4 with broadcast and peer,
// IPv6 without going through duplicate address detection again, finite
// lifetimes) and its up state, which the kernel flushes on a move.
func TestMoveLinkKeepsAddressesAndState(t *testing.T) {
	needRoot(t)
	from, to := newNS(t, "mvfrom"), newNS(t, "mvto")
	ipScript(t, from, `
link add d0 type veth peer name d1
addr add 192.0.2.1/24 broadcast 192.0.2.255 dev d0
addr add 198.51.100.1 peer 198.51.100.2/32 dev d0
addr add 203.0.113.9/24 dev d0 valid_lft 1000 preferred_lft 500
addr add 2001:db8::1/64 dev d0 nodad
link set d0 up
link set d1 up
`)
	before, _ := ipLinkAddrs(t, from, "d0")
	if err := MoveLink("d0", from, to); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", from, "link", "show", "d0").CombinedOutput(); err == nil {
		t.Fatalf("d0 is still in %s: %s", from, out)
	}
	after, up := ipLinkAddrs(t, to, "d0")
	if !up {
		t.Error("d0 is down after the move")
	}
	if len(after) != len(before) {
		t.Fatalf("addresses before the move:\n%+v\nafter:\n%+v", before, after)
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.Local != b.Local || a.Address != b.Address || a.PrefixLen != b.PrefixLen || a.Broadcast != b.Broadcast || a.Scope != b.Scope {
			t.Errorf("address %d: before %+v, after %+v", i, b, a)
		}
		if a.Tentative {
			t.Errorf("%s is tentative after the move", a.Local)
		}
		if b.ValidLft < 1000 && (a.ValidLft > b.ValidLft || a.ValidLft+60 < b.ValidLft) {
			t.Errorf("%s: valid lifetime %d before, %d after", a.Local, b.ValidLft, a.ValidLft)
		}
	}
	// and back, into the caller's namespace and out again, is not tested:
	// the tests never touch the host's own devices.
}

func TestMoveLinkMissingDevice(t *testing.T) {
	needRoot(t)
	from, to := newNS(t, "mvnone"), newNS(t, "mvnone2")
	err := MoveLink("nosuch0", from, to)
	if err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("MoveLink of a missing device: %v", err)
	}
}

// A namespace created for a domain carries its owner on its loopback's
// alias, is found by DomainNamespaces for that owner only, and is
// deleted only by it.
func TestDomainNamespaceOwner(t *testing.T) {
	needRoot(t)
	prefix := "tr-k"
	if p := os.Getenv("TUNROUTE_TEST_NS_PREFIX"); p != "" {
		prefix = p
	}
	name := fmt.Sprintf("%s-dom-%d", prefix, os.Getpid())
	exec.Command("ip", "netns", "del", name).Run()
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	top := newNS(t, "domtop")
	if err := CreateNamespace(name, top); err != nil {
		t.Fatal(err)
	}
	if err := CreateNamespace(name, top); err != nil {
		t.Fatalf("creating it again for the same config: %v", err)
	}
	if err := CreateNamespace(name, ""); err == nil {
		t.Fatal("a namespace of another config was taken over")
	}
	owner, err := NamespaceOwner(name)
	if err != nil || owner != "netns "+top {
		t.Fatalf("owner %q, %v; want %q", owner, err, "netns "+top)
	}
	lo := ipn(t, name, "link", "show", "lo")
	if !strings.Contains(lo, "alias "+DomainMark+"netns "+top) || !strings.Contains(lo, ",UP") {
		t.Errorf("loopback of %s: %s", name, lo)
	}
	if got, err := DomainNamespaces(top); err != nil || !slices.Contains(got, name) {
		t.Errorf("DomainNamespaces(%s) = %v, %v", top, got, err)
	}
	if got, _ := DomainNamespaces(""); slices.Contains(got, name) {
		t.Errorf("DomainNamespaces of the host lists %s", name)
	}
	if owner, err := NamespaceOwner(name + "-none"); owner != "" || err != nil {
		t.Errorf("owner of a missing namespace: %q, %v", owner, err)
	}
	if err := DeleteNamespace(name, ""); err == nil {
		t.Fatal("another config deleted the namespace")
	}
	if err := DeleteNamespace(name, top); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NetnsDir + "/" + name); err == nil {
		t.Fatalf("%s still exists", name)
	}
}
