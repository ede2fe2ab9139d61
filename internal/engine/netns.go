package engine

import (
	"fmt"

	"github.com/tunroute/tunroute/internal/netnsname"
)

// DetectNamespace finds the namespace tunroute works on when --netns is
// not given: the named namespace the process runs in (`ip netns exec NS
// tunroute ...` works on NS, with NS's facts and domains), or, inside a
// routing domain (`tunroute exec DOMAIN -- openvpn ...`), the namespace
// whose config has that domain. Every command and hook decides the same
// way.
func DetectNamespace(h Host) (string, error) {
	cur, err := h.CurrentNamespace()
	if err != nil || cur == "" {
		return cur, err
	}
	owner, err := h.NamespaceOwner(cur)
	if err != nil || owner == "" {
		return cur, err
	}
	top, err := netnsname.ParseOwner(owner)
	if err != nil {
		return "", fmt.Errorf("domain namespace %s: its owner mark: %w", cur, err)
	}
	return string(top), nil
}
