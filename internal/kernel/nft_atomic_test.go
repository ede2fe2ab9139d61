package kernel

// The kill switch under traffic: replaced while packets flow, and counting
// what it drops.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunroute/tunroute/internal/state"
)

// killSwitchVariant is vpnUpFirewall with one more prefix allowed in
// clear, so that replacing one with the other changes the table.
func killSwitchVariant(i int) *state.Firewall {
	fw := vpnUpFirewall()
	if i%2 == 1 {
		out := &fw.Chains[2]
		extra := state.FwRule{Comment: "allowed in clear", Family: 4, Daddr: pfxs("10.99.0.0/24"), Verdict: "accept"}
		out.Rules = append(out.Rules[:len(out.Rules)-1], extra, out.Rules[len(out.Rules)-1])
	}
	return fw
}

// streamer sends UDP datagrams from A to B as fast as it can until stopped.
type streamer struct {
	stop     atomic.Bool
	attempts atomic.Int64
	wg       sync.WaitGroup
}

func stream(s4, s6 *sock) *streamer {
	st := &streamer{}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		for !st.stop.Load() {
			s4.send(ap("10.77.0.2:9999"), 1, []byte("leak?"))
			s6.send(ap("[2001:db8:77::2]:9999"), 1, []byte("leak?"))
			st.attempts.Add(2)
		}
	}()
	return st
}

func (st *streamer) halt() int64 {
	st.stop.Store(true)
	st.wg.Wait()
	return st.attempts.Load()
}

// TestFirewallReplaceAtomic: while A sends a stream of UDP packets to B
// that the kill switch drops, the table is replaced 200 times; B must
// receive none. The same stream leaks when the table is deleted and added
// in two transactions instead, which shows that the test sees a window.
func TestFirewallReplaceAtomic(t *testing.T) {
	needNft(t)
	fakeCgroups(t, "system.slice/backup.service")
	p := newPair(t, "atom", 1)
	countIn(t, p.b, "udp dport 9999")
	h := openT(t, p.a)
	s4, s6 := udpSocket(t, p.a, false, -1, 0), udpSocket(t, p.a, true, -1, 0)

	// Without the kill switch the stream arrives.
	before := settleCounts(t, p.b)
	st := stream(s4, s6)
	time.Sleep(100 * time.Millisecond)
	st.halt()
	if got := delta(before, settleCounts(t, p.b)); got[0] == 0 {
		t.Fatalf("without the kill switch nothing arrived: the test cannot see a leak")
	}

	if _, err := h.Execute([]state.Op{fwOp(state.Add, killSwitchVariant(0), nil)}); err != nil {
		t.Fatal(err)
	}
	before = settleCounts(t, p.b)
	st = stream(s4, s6)
	start := time.Now()
	for i := 1; i <= 200; i++ {
		op := fwOp(state.Replace, killSwitchVariant(i), killSwitchVariant(i-1))
		if applied, err := h.Execute([]state.Op{op}); err != nil || !applied[0] {
			st.halt()
			t.Fatalf("replace %d: %v %v", i, applied, err)
		}
	}
	took := time.Since(start)
	sent := st.halt()
	leaked := delta(before, settleCounts(t, p.b))[0]
	t.Logf("200 replaces in %v while %d packets were sent; %d arrived", took, sent, leaked)
	if leaked != 0 {
		t.Errorf("%d packets leaked while the table was replaced", leaked)
	}
	if sent < 1000 {
		t.Errorf("only %d packets were sent during the replaces", sent)
	}
	s, err := h.Observe()
	if err != nil || !s.Firewall.Equal(killSwitchVariant(200)) {
		t.Errorf("after the replaces Observe gives %v, %v", s.Firewall, err)
	}

	// Control: delete and add in two transactions opens a window.
	before = settleCounts(t, p.b)
	st = stream(s4, s6)
	for i := 0; i < 200; i++ {
		fw := killSwitchVariant(200)
		if _, err := h.Execute([]state.Op{fwOp(state.Delete, fw, nil)}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Execute([]state.Op{fwOp(state.Add, fw, nil)}); err != nil {
			t.Fatal(err)
		}
	}
	st.halt()
	window := delta(before, settleCounts(t, p.b))[0]
	t.Logf("delete and add in separate transactions, 200 times: %d packets arrived", window)
	if window == 0 {
		t.Errorf("the control leaked nothing: the test may not see a window")
	}
}

// TestFirewallCounters: packets the kill switch drops are counted, and
// Observe reports the counts nft shows.
func TestFirewallCounters(t *testing.T) {
	needNft(t)
	fakeCgroups(t, "system.slice/backup.service")
	p := newPair(t, "count", 1)
	countIn(t, p.b, "udp dport 9999", "udp dport 53")
	h := openT(t, p.a)
	fw := vpnUpFirewall()
	if _, err := h.Execute([]state.Op{fwOp(state.Add, fw, nil)}); err != nil {
		t.Fatal(err)
	}
	s4, s6 := udpSocket(t, p.a, false, -1, 0), udpSocket(t, p.a, true, -1, 0)
	payload := make([]byte, 100)
	if n := s4.send(ap("10.77.0.2:9999"), 37, payload) + s6.send(ap("[2001:db8:77::2]:9999"), 11, payload); n != 0 {
		t.Errorf("the kernel took %d packets the kill switch drops", n)
	}
	s4.send(ap("10.77.0.2:53"), 5, payload) // DNS to an undeclared resolver
	s4.send(ap("10.30.0.1:53"), 3, payload) // to the declared one: no route, not counted
	s6.send(ap("[2001:db8:77::2]:53"), 2, payload)
	if got := settleCounts(t, p.b); fmt.Sprint(got) != "[0 0]" {
		t.Errorf("B received %v", got)
	}
	s := observeT(t, h, ObserveOptions{})
	out := s.Firewall.Chains[2].Rules
	final := out[len(out)-1]
	// IPv4: 20 + 8 + 100 bytes; IPv6: 40 + 8 + 100.
	if final.Packets != 48 || final.Bytes != 37*128+11*148 {
		t.Errorf("final rule counted %d packets, %d bytes; want 48, %d", final.Packets, final.Bytes, 37*128+11*148)
	}
	if out[1].Packets != 5 || out[1].Bytes != 5*128 || out[3].Packets != 2 || out[2].Packets != 0 {
		t.Errorf("DNS rules counted %d/%d/%d packets, want 5/0/2", out[1].Packets, out[2].Packets, out[3].Packets)
	}
	// The same counts as nft shows, rule by rule.
	oracle := nftOracle(t, p.a)
	for ci, c := range s.Firewall.Chains {
		for ri, r := range c.Rules {
			if g := oracle[ci].rules[ri]; g.Packets != r.Packets || g.Bytes != r.Bytes {
				t.Errorf("%s rule %d: Observe counted %d/%d, nft %d/%d", c.Name, ri+1, r.Packets, r.Bytes, g.Packets, g.Bytes)
			}
		}
	}
	if !s.Firewall.Equal(fw) {
		t.Error("counts made the table differ")
	}
}
