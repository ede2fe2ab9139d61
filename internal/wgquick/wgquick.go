// Package wgquick reads wg-quick(8) configuration files and writes the
// equivalent tunroute config: the device with its key, port, mark and
// peers, its addresses, and wg-quick's routing (table auto, off or a
// number) which tunroute then owns and checks.
package wgquick

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Config is a wg-quick file's content.
type Config struct {
	Name       string // the interface, from the file's name (wg0.conf: wg0)
	PrivateKey wgtypes.Key
	Addresses  []netip.Prefix
	ListenPort int
	FwMark     uint32
	// Table: "auto" (wg-quick's default), "off" or a number.
	Table string
	MTU   int
	DNS   []string
	// Scripts are the PreUp/PostUp/PreDown/PostDown lines, which tunroute
	// does not run.
	Scripts []string
	Peers   []Peer
}

// Peer is a [Peer] section.
type Peer struct {
	PublicKey wgtypes.Key
	// PresharedKey is nil when the peer has none.
	PresharedKey *wgtypes.Key
	Endpoint     netip.AddrPort
	AllowedIPs   []netip.Prefix
	Keepalive    int
}

// Error is a problem at a line of the file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads a wg-quick file; name is its path (for the interface name
// and errors).
func Parse(r io.Reader, name string) (*Config, error) {
	c := &Config{Name: strings.TrimSuffix(filepath.Base(name), ".conf"), Table: "auto"}
	if c.Name == "" || len(c.Name) > 15 || strings.ContainsAny(c.Name, "/: \t") {
		return nil, fmt.Errorf("%s: the file's name gives the interface's name (wg0.conf is wg0); %q is not a valid interface name", name, c.Name)
	}
	section := ""
	var peer *Peer
	haveKey := false
	sc := bufio.NewScanner(r)
	line := 0
	fail := func(format string, args ...any) error {
		return &Error{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "[") {
			switch strings.ToLower(text) {
			case "[interface]":
				section = "interface"
			case "[peer]":
				section = "peer"
				c.Peers = append(c.Peers, Peer{})
				peer = &c.Peers[len(c.Peers)-1]
			default:
				return nil, fail("unknown section %s (wg-quick has [Interface] and [Peer])", text)
			}
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fail("expected KEY = VALUE, found %q", text)
		}
		origKey := strings.TrimSpace(key)
		key, value = strings.ToLower(origKey), strings.TrimSpace(value)
		var err error
		switch section + "." + key {
		case "interface.privatekey":
			if c.PrivateKey, err = wgtypes.ParseKey(value); err != nil {
				return nil, fail("PrivateKey is not a WireGuard key (base64, 32 bytes)")
			}
			haveKey = true
		case "interface.address":
			for _, s := range list(value) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					a, err2 := netip.ParseAddr(s)
					if err2 != nil {
						return nil, fail("Address %q is not an address with a prefix length", s)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				c.Addresses = append(c.Addresses, p)
			}
		case "interface.listenport":
			if c.ListenPort, err = number(value, 1, 65535); err != nil {
				return nil, fail("ListenPort: %v", err)
			}
		case "interface.fwmark":
			if value != "off" && value != "0" {
				v, err := strconv.ParseUint(value, 0, 32)
				if err != nil || v == 0 {
					return nil, fail("FwMark %q is not a number (or off)", value)
				}
				c.FwMark = uint32(v)
			}
		case "interface.table":
			if value != "auto" && value != "off" {
				if _, err := strconv.ParseUint(value, 10, 32); err != nil {
					return nil, fail("Table %q: tunroute takes auto, off or a number here", value)
				}
			}
			c.Table = value
		case "interface.mtu":
			if c.MTU, err = number(value, 576, 65535); err != nil {
				return nil, fail("MTU: %v", err)
			}
		case "interface.dns":
			c.DNS = append(c.DNS, list(value)...)
		case "interface.preup", "interface.postup", "interface.predown", "interface.postdown":
			c.Scripts = append(c.Scripts, origKey+" = "+value)
		case "interface.saveconfig":
		case "peer.publickey":
			if peer.PublicKey, err = wgtypes.ParseKey(value); err != nil {
				return nil, fail("PublicKey is not a WireGuard key (base64, 32 bytes)")
			}
		case "peer.presharedkey":
			k, err := wgtypes.ParseKey(value)
			if err != nil {
				return nil, fail("PresharedKey is not a WireGuard key (base64, 32 bytes)")
			}
			peer.PresharedKey = &k
		case "peer.endpoint":
			ap, err := netip.ParseAddrPort(value)
			if err != nil || ap.Port() == 0 {
				return nil, fail("Endpoint %q: tunroute needs ADDRESS:PORT (host names are not resolved; IPv6 in brackets)", value)
			}
			peer.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		case "peer.allowedips":
			for _, s := range list(value) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return nil, fail("AllowedIPs %q is not a prefix", s)
				}
				peer.AllowedIPs = append(peer.AllowedIPs, p.Masked())
			}
		case "peer.persistentkeepalive":
			if value != "off" {
				if peer.Keepalive, err = number(value, 0, 65535); err != nil {
					return nil, fail("PersistentKeepalive: %v", err)
				}
			}
		default:
			if section == "" {
				return nil, fail("%s outside a section ([Interface] or [Peer])", key)
			}
			return nil, fail("unknown key %s in [%s]", key, map[string]string{"interface": "Interface", "peer": "Peer"}[section])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !haveKey {
		return nil, fmt.Errorf("%s: no PrivateKey in [Interface]", name)
	}
	for i, p := range c.Peers {
		var zero wgtypes.Key
		if p.PublicKey == zero {
			return nil, fmt.Errorf("%s: peer %d has no PublicKey", name, i+1)
		}
	}
	return c, nil
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func number(s string, min, max int) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < min || v > max {
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, min, max)
	}
	return v, nil
}

// YAML writes the tunroute config equivalent to c, its private key read
// from keyFile (which the caller writes). What tunroute does not take
// over (scripts, DNS, MTU) is listed in comments, and returned as notes.
func (c *Config) YAML(keyFile string) (string, []string) {
	var b strings.Builder
	var notes []string
	fmt.Fprintf(&b, "# Imported from wg-quick's %s.conf by tunroute import wg-quick.\n", c.Name)
	if len(c.Scripts) > 0 {
		notes = append(notes, fmt.Sprintf("%d PreUp/PostUp/PreDown/PostDown line(s) are not run by tunroute: translate what they do into the config", len(c.Scripts)))
		b.WriteString("# Not taken over (tunroute runs no scripts):\n")
		for _, s := range c.Scripts {
			fmt.Fprintf(&b, "#   %s\n", s)
		}
	}
	if len(c.DNS) > 0 {
		notes = append(notes, "DNS = "+strings.Join(c.DNS, ", ")+" is not set by tunroute; the kill switch's `dns:` restricts DNS to these resolvers")
		fmt.Fprintf(&b, "# DNS = %s: tunroute does not write resolv.conf; killswitch.dns can keep DNS to these.\n", strings.Join(c.DNS, ", "))
	}
	if c.MTU != 0 {
		notes = append(notes, fmt.Sprintf("MTU = %d is not set by tunroute (the kernel's default for WireGuard is 1420)", c.MTU))
		fmt.Fprintf(&b, "# MTU = %d: not set by tunroute.\n", c.MTU)
	}
	b.WriteString("devices:\n")
	fmt.Fprintf(&b, "  - name: %s\n    type: wireguard\n    private_key_file: %q\n", c.Name, keyFile)
	if len(c.Addresses) > 0 {
		fmt.Fprintf(&b, "    address: [%s]\n", quoted(prefixStrings(c.Addresses)))
	}
	if c.ListenPort != 0 {
		fmt.Fprintf(&b, "    listen_port: %d\n", c.ListenPort)
	}
	if c.FwMark != 0 {
		fmt.Fprintf(&b, "    fwmark: %#x\n", c.FwMark)
	}
	fmt.Fprintf(&b, "    table: %s\n", c.Table)
	if len(c.Peers) > 0 {
		b.WriteString("    peers:\n")
	}
	for i, p := range c.Peers {
		fmt.Fprintf(&b, "      - public_key: %q\n", p.PublicKey.String())
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "        endpoint: %q\n", p.Endpoint.String())
		}
		if len(p.AllowedIPs) > 0 {
			fmt.Fprintf(&b, "        allowed_ips: [%s]\n", quoted(prefixStrings(p.AllowedIPs)))
		}
		if p.Keepalive != 0 {
			fmt.Fprintf(&b, "        persistent_keepalive: %d\n", p.Keepalive)
		}
		if p.PresharedKey != nil {
			fmt.Fprintf(&b, "        preshared_key_file: %q\n", c.PresharedKeyFile(i))
		}
	}
	return b.String(), notes
}

// PresharedKeyFile names the file the i-th peer's preshared key is
// written to, beside the config.
func (c *Config) PresharedKeyFile(i int) string { return fmt.Sprintf("%s-peer%d.psk", c.Name, i+1) }

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func quoted(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return strings.Join(out, ", ")
}
