package bgp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunroute/tunroute/internal/config"
)

// testConfig: two domains joined by a pipe, each a speaker; red also
// peers by address with a router that may send a default route.
const testConfig = `
domains:
  - name: red
    bgp:
      asn: 64501
      bfd: true
      hold_time: 3
      table: 100
      neighbors:
        - pipe: rb
        - address: 10.9.0.1
          asn: 65000
          accept: [0.0.0.0/0, 10.9.0.0/16]
          allow_default: true
          max_prefixes: 3
          max_prefix_action: restart
  - name: blue
    bgp:
      asn: 64502
      originate: [10.2.0.0/24, "2001:db8:2::/48"]
      neighbors:
        - pipe: rb
          export: [10.2.0.0/24]
        - address: "2001:db8:ff::1"
          asn: 65001
          accept: ["2001:db8:1::/48"]
          export: ["2001:db8:2::/48"]
pipes:
  - name: rb
    a: {domain: red, address: [10.250.0.1/30], routes: [10.2.0.0/24]}
    b: {domain: blue, address: [10.250.0.2/30], routes: [10.1.0.0/24, 0.0.0.0/0]}
`

func speakers(t *testing.T) []Speaker {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig), "bgp.yaml", config.Options{TableNames: map[string]uint32{"main": 254}})
	if err != nil {
		t.Fatal(err)
	}
	return Speakers(cfg, "site")
}

func TestBirdConfigFilters(t *testing.T) {
	ss := speakers(t)
	if len(ss) != 2 || ss[0].Netns != "red" || ss[1].Netns != "blue" || ss[0].Top != "site" {
		t.Fatalf("speakers: %+v", ss)
	}
	red := BirdConfig(ss[0], "/run/x/bird.log")
	expectLines(t, "red's configuration", red,
		"router id 10.250.0.1;",
		`log "/run/x/bird.log" all;`,
		"route 10.1.0.0/24 blackhole;",
		"kernel table 100;",
		"export where source = RTS_BGP;",
		"min rx interval 100 ms;",
		"protocol bgp pipe_rb {\n  local 10.250.0.1 as 64501;\n  neighbor 10.250.0.2 as 64502;\n  hold time 3;",
		"bfd on;",
		// exactly what blue originates over the pipe, nothing longer
		"receive limit 11 action disable;\n    import filter {\n      if net ~ [ 10.2.0.0/24 ] then accept;\n      reject;",
		"export filter {\n      if net ~ [ 10.1.0.0/24 ] then accept;",
		"protocol bgp peer_10_9_0_1 {\n  local as 64501;\n  neighbor 10.9.0.1 as 65000;",
		"receive limit 3 action restart;",
		"if net ~ [ 0.0.0.0/0, 10.9.0.0/16 ] then accept;",
	)
	blue := BirdConfig(ss[1], "")
	expectLines(t, "blue's configuration", blue,
		"protocol kernel kernel6 {",
		"protocol static originate6 {\n  ipv6;\n  route 2001:db8:2::/48 blackhole;",
		// blue's pipe end routes a default route to red, but red may
		// originate only what it declares: no default accepted.
		"protocol bgp pipe_rb {\n  local 10.250.0.2 as 64502;\n  neighbor 10.250.0.1 as 64501;",
		"if net ~ [ 10.1.0.0/24 ] then accept;\n      reject;\n    };\n    export filter {\n      if net ~ [ 10.2.0.0/24 ] then accept;",
		"if net ~ [ 2001:db8:1::/48 ] then accept;",
	)
	if strings.Contains(red, "bfd") == false || strings.Contains(blue, "bfd") {
		t.Errorf("bfd only where asked")
	}
}

// TestEnginesParse has each engine's own parser check the generated
// files, and shows the check does fail on what the engine refuses.
func TestEnginesParse(t *testing.T) {
	for _, c := range []struct {
		engine, prog, file, bad string
	}{
		{"bird", "bird", "bird.conf", "router id 1.2.3.4;\nprotocol bgp x { neighbor as; }\n"},
		{"frr", "bgpd", "bgpd.conf", "router bgp 1\n neighbor 10.0.0.1 remote-as 2\n neighbor 10.0.0.1 bogus\n"},
	} {
		t.Run(c.engine, func(t *testing.T) {
			if _, err := program(c.prog); err != nil {
				t.Skip(err)
			}
			m := &Manager{RunDir: t.TempDir()}
			for _, s := range speakers(t) {
				s.BGP.Engine = c.engine
				if err := m.Check(context.Background(), s); err != nil {
					t.Errorf("%s: %v", s.Domain, err)
				}
			}
			in := &instance{Dir: t.TempDir(), Engine: c.engine}
			e := in.engine()
			for _, f := range e.files(speakers(t)[0], in) {
				os.WriteFile(in.path(f.name), f.data, 0o600)
			}
			os.WriteFile(filepath.Join(in.Dir, c.file), []byte(c.bad), 0o600)
			if err := e.check(context.Background(), m, in); err == nil {
				t.Errorf("%s accepted a broken configuration", c.engine)
			}
		})
	}
}

func TestParseBirdc(t *testing.T) {
	protos := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:00:00.000  
kernel4    Kernel     master4    up     12:00:00.000  
pipe_rb    BGP        ---        up     12:00:03.000  Established   
peer_x     BGP        ---        start  12:00:03.000  Active        Socket: Connection refused
`
	ss := parseProtocols([]byte(protos))
	if len(ss) != 2 || !ss[0].Established() || ss[1].Established() || ss[1].Info != "Active Socket: Connection refused" {
		t.Errorf("sessions: %+v", ss)
	}
	routes := `BIRD 2.0.12 ready.
Table master4:
10.2.0.0/24          unicast [pipe_rb 12:00:04.000] * (100) [AS64502i]
	via 10.250.0.2 on rb
10.3.0.0/24          unicast [pipe_rb 12:00:04.000] * (100) [AS64502 64999i]
	via 10.250.0.2 on rb
`
	rs := parseRoutes([]byte(routes))
	if len(rs) != 2 || rs[0].Prefix.String() != "10.2.0.0/24" || rs[0].Via.String() != "10.250.0.2" || rs[0].Dev != "rb" ||
		rs[1].ASPath != "64502 64999i" {
		t.Errorf("routes: %+v", rs)
	}
}

func TestFRRConfigFilters(t *testing.T) {
	ss := speakers(t)
	red := FRRConfig(ss[0])
	expectLines(t, "red's bgpd.conf", red,
		"ip prefix-list tr_in_pipe_rb seq 5 permit 10.2.0.0/24\nroute-map tr_in_pipe_rb permit 10\n match ip address prefix-list tr_in_pipe_rb\nexit",
		"ip prefix-list tr_out_pipe_rb seq 5 permit 10.1.0.0/24",
		"ip prefix-list tr_in_peer_10_9_0_1 seq 5 permit 0.0.0.0/0\nip prefix-list tr_in_peer_10_9_0_1 seq 10 permit 10.9.0.0/16",
		"ip prefix-list tr_out_peer_10_9_0_1 seq 5 permit 10.1.0.0/24",
		"router bgp 64501\n bgp router-id 10.250.0.1\n no bgp ebgp-requires-policy",
		" neighbor 10.250.0.2 remote-as 64502\n neighbor 10.250.0.2 description pipe_rb\n neighbor 10.250.0.2 update-source 10.250.0.1\n neighbor 10.250.0.2 timers 1 3",
		" neighbor 10.250.0.2 bfd profile tunroute",
		"  network 10.1.0.0/24",
		"  neighbor 10.250.0.2 maximum-prefix 11 force",
		"  neighbor 10.9.0.1 maximum-prefix 3 restart 1 force",
	)
	blue := FRRConfig(ss[1])
	expectLines(t, "blue's bgpd.conf", blue,
		"ipv6 prefix-list tr_in_peer_2001_db8_ff__1 seq 5 permit 2001:db8:1::/48\nroute-map tr_in_peer_2001_db8_ff__1 permit 10\n match ipv6 address prefix-list",
		" address-family ipv6 unicast\n  network 2001:db8:2::/48\n  neighbor 2001:db8:ff::1 activate",
	)
	if strings.Contains(blue, "bfd profile") {
		t.Errorf("bfd only where asked:\n%s", blue)
	}
}

// expectLines fails the test for each of wants that the configuration
// text (what names it) lacks.
func expectLines(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}
