package kernel

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tunroute/tunroute/internal/state"
	"github.com/tunroute/tunroute/internal/testns"
)

// newDm2NS creates the namespace tr-dm2-k<short>-<pid>, deleted when the
// test ends.
func newDm2NS(t *testing.T, short string) string {
	t.Helper()
	return testns.NewNS(t, fmt.Sprintf("tr-dm2-k%s-%d", short, os.Getpid()))
}

// TestObserveFirewallCounters: ObserveFirewall reads tunroute's table
// alone, with the counters' values (what the daemon's metrics show as
// kill switch drops), and nil once the table is gone.
func TestObserveFirewallCounters(t *testing.T) {
	needNft(t)
	ns := newDm2NS(t, "ctr")
	h := openT(t, ns)
	fw := &state.Firewall{Chains: []state.Chain{{Name: "killswitch_postrouting", Type: "filter", Hook: "postrouting", Policy: "accept",
		Rules: []state.FwRule{
			{Comment: "kill switch: test drop", OIF: []string{"lo"}, Proto: unix.IPPROTO_UDP, DPorts: ports1(9), Counter: true, Verdict: "drop"},
		}}}}
	if _, err := h.Execute([]state.Op{fwOp(state.Add, fw, nil)}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "bash", "-c",
		`for i in 1 2 3 4; do echo x >/dev/udp/127.0.0.1/9; done 2>&1; true`).CombinedOutput()
	if err != nil {
		t.Fatalf("sending: %v %s", err, out)
	}
	got, err := h.ObserveFirewall()
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || len(got.Chains) != 1 || len(got.Chains[0].Rules) != 1 {
		t.Fatalf("observed %+v", got)
	}
	r := got.Chains[0].Rules[0]
	if r.Comment != "kill switch: test drop" || r.Packets != 4 || r.Bytes == 0 {
		t.Errorf("rule %q: %d packets, %d bytes; want 4 packets (sent: %s)", r.Comment, r.Packets, r.Bytes, out)
	}
	nftIn(t, ns, "flush", "ruleset")
	if got, err := h.ObserveFirewall(); err != nil || got != nil {
		t.Errorf("after a flush: %+v, %v; want nil", got, err)
	}
}

// TestKernelKeepsOwnedTableFromFlush is the kernel's behaviour a kill
// switch that survives `nft flush ruleset` would rest on (tunroute does
// not use it yet): a table created with NFT_TABLE_F_OWNER (Linux 5.12)
// is skipped by another process's flush while its owner's netlink socket
// is open, and refuses changes from other sockets; with
// NFT_TABLE_F_PERSIST (Linux 6.9) it stays when the owner's socket
// closes (a killed daemon leaves it: fail closed) and a new socket can
// claim it again. An orphan is anybody's (changed, flushed like any
// table). A table made without the flags cannot be claimed.
func TestKernelKeepsOwnedTableFromFlush(t *testing.T) {
	needNft(t)
	ns := newDm2NS(t, "own")
	const owner, persist = 0x2, 0x4 // NFT_TABLE_F_OWNER, NFT_TABLE_F_PERSIST
	present := func() bool {
		return strings.Contains(nftIn(t, ns, "list", "tables"), "table inet tr-dm2-owned")
	}
	s1 := nfSocketIn(t, ns)
	if err := nfNewTable(s1, "tr-dm2-owned", owner|persist); err != nil {
		if err == unix.EINVAL || err == unix.EOPNOTSUPP {
			t.Skipf("this kernel does not have owned persistent tables: %v", err)
		}
		t.Fatal(err)
	}
	// A table made without the flags (as tunroute makes its table today)
	// cannot be claimed later: the flags must be there from the start.
	nftIn(t, ns, "add", "table", "inet", "tr-dm2-plain")
	if err := nfNewTable(s1, "tr-dm2-plain", owner|persist); err != unix.EOPNOTSUPP {
		t.Errorf("claiming a table made without the flags: %v, want EOPNOTSUPP", err)
	}
	nftIn(t, ns, "flush", "ruleset")
	if !present() {
		t.Fatal("the owned table did not survive nft flush ruleset")
	}
	if err := nfNewTable(nfSocketIn(t, ns), "tr-dm2-owned", persist); err != unix.EPERM {
		t.Errorf("another socket changing the owned table: %v, want EPERM", err)
	}
	unix.Close(s1)
	if !present() {
		t.Fatal("the persistent table went with its owner's socket")
	}
	// An orphan is anybody's: a command changes it.
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "tr-dm2-owned", "other").CombinedOutput(); err != nil {
		t.Errorf("changing the orphan from another process: %v %s", err, out)
	}
	s2 := nfSocketIn(t, ns)
	defer unix.Close(s2)
	if err := nfNewTable(s2, "tr-dm2-owned", owner|persist); err != nil {
		t.Fatalf("claiming the orphan again: %v", err)
	}
	nftIn(t, ns, "flush", "ruleset")
	if !present() {
		t.Fatal("the claimed table did not survive nft flush ruleset")
	}
	unix.Close(s2)
	nftIn(t, ns, "flush", "ruleset")
	if present() {
		t.Error("an orphaned table survived nft flush ruleset")
	}
}

// nfSocketIn opens a NETLINK_NETFILTER socket in the namespace ns.
func nfSocketIn(t *testing.T, ns string) int {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fd, err := socketAt(h, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func socketAt(h netns.NsHandle, proto int) (int, error) {
	// netns.Set switches the calling thread; a fresh locked goroutine
	// makes the socket and exits, so no thread is left in ns.
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			ch <- res{-1, err}
			return // the thread stays locked and dies with the goroutine
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		}
		ch <- res{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

// nfNewTable sends one batch creating (or updating) inet table name with
// flags, and returns the kernel's answer.
func nfNewTable(fd int, name string, flags uint32) error {
	attr := func(typ uint16, data []byte) []byte {
		b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	msg := func(typ, fl uint16, seq uint32, family uint8, resid uint16, payload []byte) []byte {
		b := binary.NativeEndian.AppendUint32(nil, uint32(20+len(payload)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = binary.NativeEndian.AppendUint16(b, fl)
		b = binary.NativeEndian.AppendUint32(b, seq)
		b = binary.NativeEndian.AppendUint32(b, 0)
		b = append(b, family, 0)
		b = binary.BigEndian.AppendUint16(b, resid)
		return append(b, payload...)
	}
	payload := append(attr(unix.NFTA_TABLE_NAME, append([]byte(name), 0)), attr(unix.NFTA_TABLE_FLAGS, binary.BigEndian.AppendUint32(nil, flags))...)
	var b []byte
	b = append(b, msg(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, 1, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)...)
	b = append(b, msg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK, 2, unix.NFPROTO_INET, 0, payload)...)
	b = append(b, msg(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, 3, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)...)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
				return unix.Errno(-e)
			}
		}
	}
	return nil
}
