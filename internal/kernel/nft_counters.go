package kernel

import (
	"fmt"

	"github.com/tunroute/tunroute/internal/state"
)

// ObserveFirewall reads only tunroute's nftables table (nil if it does
// not exist), with its counters' values: what the daemon's metrics
// scrape reads, without the cost of reading routes.
func (h *Handle) ObserveFirewall() (*state.Firewall, error) {
	if _, err := h.lock(); err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	fw, err := h.readFirewall()
	if err != nil {
		return nil, fmt.Errorf("observe %s: %w", h.describe(), err)
	}
	return fw, nil
}
