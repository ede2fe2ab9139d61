package state

import (
	"reflect"
	"testing"
)

// Every field of the objects the fast path reads has a reader: a field of
// a new type would otherwise send every snapshot with it to encoding/json,
// seconds slower on a big table, with no test failing.
func TestFastParseReadsEveryField(t *testing.T) {
	for name, f := range map[string]*objectFields{
		"Route": routeFields, "Addr": addrFields, "RouteSet": routeSetFields,
		"Nexthop": fieldsFor[Nexthop](), "Member": fieldsFor[Member](),
	} {
		if f.unsupported {
			t.Errorf("%s: not read by the fast path", name)
		}
		for k, r := range f.readers {
			if r == nil {
				t.Errorf("%s.%s: no reader", name, f.keys[k])
			}
		}
	}
	if got, want := stateKeys.keys, jsonKeys(reflect.TypeFor[State]()); len(got) != 12 || !reflect.DeepEqual(got, want) {
		t.Errorf("State keys %v", got)
	}
}

// A route that uses every field, take_back and a member included, reads
// the same through the fast path as through encoding/json.
func TestFastParseFullRoute(t *testing.T) {
	data := []byte(`{"version": 1, "routes": [{"table": 254, "type": "unicast", "dst": "2001:db8::/32",
"src": "2001:db8:1::/48", "tos": 0, "metric": 1024, "protocol": "static", "scope": "global", "prefsrc": "2001:db8::1",
"flags": ["onlink"], "nexthops": [{"gateway": "fe80::1", "dev": "eth0", "index": 2, "weight": 3, "flags": [],
"member": {"prefsrc": "2001:db8::2", "pref": 1, "mtu": 1400, "unknown": true}}], "pref": 1, "expires": 30,
"nhid": 7, "take_back": true, "nhgroup": "resilient", "mtu": 1500}],
"addrs": [{"dev": "eth0", "index": 2, "prefix": "192.0.2.1/24", "peer": "192.0.2.2/32", "broadcast": "192.0.2.255",
"scope": "link", "flags": ["nodad"], "label": "eth0:1", "proto": "kernel", "valid_lft": 10, "preferred_lft": 5}],
"route_sets": [{"template": {"table": 100, "type": "unicast", "dst": "", "protocol": "static", "scope": "global", "flags": []},
"dsts": ["10.0.0.0/8", "10.1.0.0/16"]}]}`)
	got, ok := parseFast(data)
	if !ok {
		t.Fatal("fast path refused it")
	}
	want, err := decodeJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast path:\n%+v\nencoding/json:\n%+v", got, want)
	}
	if !got.Routes[0].TakeBack || got.Routes[0].Nexthops[0].Member == nil || !got.Routes[0].Nexthops[0].Member.Unknown {
		t.Fatalf("fields lost: %+v", got.Routes[0])
	}
}
