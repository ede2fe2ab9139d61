package engine

import (
	"path/filepath"

	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/facts"
	"github.com/tunroute/tunroute/internal/netnsconf"
	"github.com/tunroute/tunroute/internal/netnsname"
)

// DefaultRunDir is tunroute's runtime directory.
const DefaultRunDir = "/run/tunroute"

// Engine runs the pipeline for one namespace (Netns) and the domains of
// its config.
type Engine struct {
	Host Host
	// Netns is the namespace tunroute works on ("" for its own).
	Netns string
	// ConfigPath is the config file (config.DefaultPath if empty).
	ConfigPath string
	// RunDir holds runtime state: VPN facts, locks, confirmations
	// (DefaultRunDir if empty).
	RunDir string
	// EtcNetns is iproute2's per-namespace /etc directory
	// (netnsconf.DefaultDir if empty).
	EtcNetns string
	// Progress hears of long applies (nil: nothing).
	Progress func(done, total int)
	// Domains, if set, keeps the list of domain namespaces between reads
	// (a daemon's repairs); nil lists them at every read.
	Domains *DomainCache
	// Lists, if set, keeps the config's route lists between reads (a
	// daemon's applies); nil reads every list whole.
	Lists *config.ListCache
}

// New returns an engine on the real host.
func New(netns, configPath, runDir string) *Engine {
	return &Engine{Host: LiveHost{}, Netns: netns, ConfigPath: configPath, RunDir: runDir}
}

// Where is the namespace tunroute works on, in words.
func (e *Engine) Where() string { return netnsname.Word(e.Netns) }

// ConfigFile is the config file the engine reads.
func (e *Engine) ConfigFile() string {
	if e.ConfigPath == "" {
		return config.DefaultPath
	}
	return e.ConfigPath
}

func (e *Engine) runDir() string {
	if e.RunDir == "" {
		return DefaultRunDir
	}
	return e.RunDir
}

func (e *Engine) etcNetns() string {
	if e.EtcNetns == "" {
		return netnsconf.DefaultDir
	}
	return e.EtcNetns
}

// LoadConfig reads and checks the config file.
func (e *Engine) LoadConfig() (*config.Config, error) {
	return config.Load(e.ConfigFile(), config.Options{Lists: e.Lists})
}

// FactStore is the runtime facts directory of the namespace.
func (e *Engine) FactStore() (*facts.Store, error) {
	return facts.Open(filepath.Join(e.runDir(), "facts"), e.Netns)
}
