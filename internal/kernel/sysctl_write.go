package kernel

import (
	"fmt"
	"os"
	"strings"
)

// SetSysctls writes sysctls inside a named namespace (files under
// /proc/sys/net belong to the namespace of the thread that opens them).
// Only namespaces tunroute owns get this: the host's settings are the
// host's.
func SetSysctls(netns string, values map[string]string) error {
	ns, err := openNamespace(netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	return inNetns(ns, func() error {
		for name, v := range values {
			if !strings.HasPrefix(name, "net.") {
				return fmt.Errorf("sysctl %s: tunroute only sets net.* in a namespace", name)
			}
			if err := os.WriteFile(sysctlPath(name), []byte(v+"\n"), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", name, v, netns, err)
			}
		}
		return nil
	})
}
