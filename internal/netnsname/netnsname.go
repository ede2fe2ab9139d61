// Package netnsname names the network namespaces tunroute works on, in
// the few forms the rest of tunroute needs: words for people, a key for
// file names (facts, locks, confirmations) and the owner record a domain
// namespace carries. One home for each form, so that one form is never
// parsed back from another built elsewhere.
package netnsname

import (
	"fmt"
	"regexp"
	"strings"
)

// Name is a network namespace's name under /run/netns; "" is the one
// tunroute runs in (the host's, unless started inside another).
type Name string

// Host is the namespace tunroute runs in.
const Host Name = ""

var valid = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Check reports whether a namespace name is one tunroute accepts: what
// `ip netns add` accepts, minus what cannot name a file safely.
func Check(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > 200 || !valid.MatchString(name) {
		return fmt.Errorf("%q is not a usable network namespace name (letters, digits, '_', '.', '-'; at most 200)", name)
	}
	return nil
}

// String is the name in words: "the host namespace", "namespace X".
func (n Name) String() string {
	if n == Host {
		return "the host namespace"
	}
	return "namespace " + string(n)
}

// Key names the namespace in file names: "host" or "ns-NAME" (names
// are checked, so "host" is never a namespace's own key).
func (n Name) Key() string {
	if n == Host {
		return "host"
	}
	return "ns-" + string(n)
}

// Owner is how a domain namespace's mark names the namespace whose
// config has the domain: "host" or "netns NAME".
func (n Name) Owner() string {
	if n == Host {
		return "host"
	}
	return "netns " + string(n)
}

// ParseOwner reads an Owner string back.
func ParseOwner(s string) (Name, error) {
	if s == "host" {
		return Host, nil
	}
	if name, ok := strings.CutPrefix(s, "netns "); ok && Check(name) == nil && name != "" {
		return Name(name), nil
	}
	return "", fmt.Errorf("%q does not name a network namespace", s)
}

// Word is String for a plain string name.
func Word(name string) string { return Name(name).String() }
