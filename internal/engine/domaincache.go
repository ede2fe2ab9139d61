package engine

import "sync"

// DomainCache remembers which namespaces are the routing domains tunroute
// made, between two reads of the system. Finding them means opening every
// namespace of the host and reading its owner mark, which a daemon that
// reads the system at every repair should not pay each time: the list
// changes only when a plan creates or deletes a domain (the engine forgets
// it then) or someone deletes one (its read fails, and the list is made
// again).
type DomainCache struct {
	mu    sync.Mutex
	list  []string
	known bool
}

// Forget drops the list: the next read lists the namespaces again.
func (c *DomainCache) Forget() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.known = false
	c.list = nil
	c.mu.Unlock()
}

func (c *DomainCache) get() ([]string, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.list, c.known
}

func (c *DomainCache) set(list []string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.list, c.known = list, true
	c.mu.Unlock()
}

// domainNamespaces lists the domain namespaces of e.Netns, from the cache
// when it knows them. cached says the list came from the cache.
func (e *Engine) domainNamespaces() (list []string, cached bool, err error) {
	if l, ok := e.Domains.get(); ok {
		return l, true, nil
	}
	l, err := e.Host.DomainNamespaces(e.Netns)
	if err == nil {
		e.Domains.set(l)
	}
	return l, false, err
}
