// Package daemon is `tunroute run`: it applies the config, then keeps the
// kernel matching it while the network changes underneath. It listens
// to the kernel's events (internal/kernel.Watch) in the namespace
// tunroute works on and in every routing domain it made, and after a
// change that can matter it plans again with the engine and applies the
// plan if it is not empty: the same all-or-nothing apply as `tunroute
// apply`, under the same lock as commands and hooks.
//
// Hooks go through the daemon when it listens on its control socket:
// `tunroute hook` checks its call, hands it over (hook.go), and the
// loop records it and applies between repairs. Without a daemon, the
// hook takes the engine lock and applies by itself; a daemon started
// later plans with the facts it recorded.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tunroute/tunroute/internal/compile"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/engine"
	"github.com/tunroute/tunroute/internal/health"
	"github.com/tunroute/tunroute/internal/kernel"
	"github.com/tunroute/tunroute/internal/netnsname"
)

// DefaultDebounce gathers the events of one change (a route deleted with
// its link, a ruleset flush) into one repair.
const DefaultDebounce = 5 * time.Millisecond

// busyInterval is the least time between two plans while every pending
// repair is in back-off: a fight costs one read of the system a second.
const busyInterval = time.Second

// Options configure a daemon.
type Options struct {
	Engine *engine.Engine
	// Log gets the daemon's log (slog.Default() if nil).
	Log *slog.Logger
	// Debounce (DefaultDebounce if zero).
	Debounce time.Duration
	// Notify hears of systemd states: "READY=1", "RELOADING=1",
	// "STOPPING=1", "STATUS=..." (nil: nobody).
	Notify func(state string)
	// OnRepair hears of every repair (tests and benchmarks measure with it).
	OnRepair func(Repair)
	// Listen: serve status and reload on the control socket.
	Listen bool
	// FightAfter is how many quick repairs of one object make a fight
	// (default 3; benchmarks that undo one object on purpose raise it).
	FightAfter int
}

// Repair is one apply made because the kernel drifted from the config.
type Repair struct {
	// Objects are what was put back, by kind.
	Objects []object
	// Cause is the first event of the drift; Latency runs from reading it
	// to the kernel's acknowledgement of the last change.
	Cause   kernel.WatchEvent
	Latency time.Duration
	Err     error
}

// Kinds lists the kinds of objects a repair put back.
func (r Repair) Kinds() []string {
	var k []string
	for _, o := range r.Objects {
		if !slices.Contains(k, o.Kind) {
			k = append(k, o.Kind)
		}
	}
	return k
}

// Status is what `tunroute status` shows of a running daemon.
type Status struct {
	Netns     string         `json:"netns"`
	Config    string         `json:"config"`
	Started   time.Time      `json:"started"`
	Uptime    string         `json:"uptime"`
	Events    uint64         `json:"events"`
	Relevant  uint64         `json:"relevant_events"`
	Resyncs   uint64         `json:"resyncs"`
	Checks    uint64         `json:"checks"`
	Repairs   map[string]int `json:"repairs"`
	LastError string         `json:"last_error,omitempty"`
	InSync    bool           `json:"in_sync"`
	// KillSwitchHeld: the daemon holds the kill switch's table, which
	// nft flush ruleset then skips (hold.go).
	KillSwitchHeld bool     `json:"killswitch_held"`
	Fights         []string `json:"fights,omitempty"`
	Watching       []string `json:"watching"`
	// RouteReadsCached and RouteReadsKernel count the plans' reads of the
	// routes (per family) served from what the watchers kept, and read
	// from the kernel.
	RouteReadsCached uint64 `json:"route_reads_cached"`
	// Plans counts the plans it made for `tunroute plan`.
	Plans uint64 `json:"plans"`
	// Applies counts the applies it made for `tunroute apply`.
	Applies uint64 `json:"applies"`
	// StatusReads counts the reads it made for `tunroute status`.
	StatusReads      uint64 `json:"status_reads"`
	RouteReadsKernel uint64 `json:"route_reads_kernel"`
	// Hooks counts the VPN hook calls handed to the daemon; LastHook
	// says what the last one reported.
	Hooks    uint64 `json:"hooks"`
	LastHook string `json:"last_hook,omitempty"`
	// Health is every health-checked identity's state, with its targets.
	Health []health.Status `json:"health,omitempty"`
}

// Daemon keeps one namespace (and its domains) matching the config.
type Daemon struct {
	opts     Options
	e        *engine.Engine
	log      *slog.Logger
	cfg      *config.Config
	events   chan kernel.WatchEvent
	watchers map[string]*kernel.Watcher
	interest interest
	fights   *fights
	reloads  chan chan error
	pings    chan chan struct{}
	hooks    chan hookCall
	applies  chan applyCall
	// stopped is closed when Run returns (a hook waiting for the loop
	// then applies by itself).
	stopped chan struct{}
	// lastRead is when the last read of the system began: events read
	// before it are in it.
	lastRead time.Time
	// cfgStamp is the config file's when cfg was read from it.
	cfgStamp fileStamp
	// holdUntil: every pending repair is in back-off until then.
	holdUntil time.Time
	// lastLogged is the last error logged (not repeated while it stays).
	lastLogged string
	// prober runs the config's health checks (failover); its verdicts
	// go into every plan. healthChanged wakes the loop when one changes.
	prober        *health.Prober
	healthChanged chan struct{}
	// lastCompiled is the last applied compile result (which identities
	// carried each group's traffic: their connections are forgotten when
	// the traffic leaves them).
	lastCompiled *compile.Result
	// lastSystem is the same for every namespace (groups in domains).
	lastSystem *compile.System

	// routes keeps what plans read of the routes between repairs (nil
	// on a host that is not the live kernel).
	routes *kernel.RouteCache
	// lastWarm is when a check was last made only to fill the cache.
	lastWarm time.Time

	mu     sync.Mutex
	status Status
	// metrics: the repair latency histogram (metrics.go).
	metrics Metrics
	// fwHold: the kill switch's table held from nft flush ruleset (hold.go).
	fwHold firewallHold
}

// New prepares a daemon; Run starts it.
func New(opts Options) *Daemon {
	d := &Daemon{
		opts:     opts,
		e:        opts.Engine,
		log:      opts.Log,
		events:   make(chan kernel.WatchEvent, 4096),
		watchers: map[string]*kernel.Watcher{},
		fights:   newFights(opts.FightAfter),
		reloads:  make(chan chan error),
		pings:    make(chan chan struct{}),
		hooks:    make(chan hookCall),
		applies:  make(chan applyCall),
		stopped:  make(chan struct{}),
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if h, ok := d.e.Host.(engine.LiveHost); ok && h.Routes == nil {
		// Plans read the routes from what the last read found while the
		// watchers report nothing that can change it: beside a full BGP
		// table, a repair or a hook does not stream it again.
		d.routes = kernel.NewRouteCache()
		h.Routes = d.routes
		d.e.Host = h
	}
	if d.e.Domains == nil {
		// Repairs read the system often: the domain list is kept between
		// them (the engine forgets it when a plan changes namespaces).
		d.e.Domains = &engine.DomainCache{}
	}
	if d.e.Lists == nil {
		// Every apply reads the config again: a million-route list
		// changed by a few lines costs those lines.
		d.e.Lists = &config.ListCache{}
	}
	if d.opts.Debounce == 0 {
		d.opts.Debounce = DefaultDebounce
	}
	d.status = Status{Netns: netnsname.Word(d.e.Netns), Config: d.e.ConfigFile(), Repairs: map[string]int{}}
	return d
}

func (d *Daemon) notify(s string) {
	if d.opts.Notify != nil {
		d.opts.Notify(s)
	}
}

// Run applies the config and repairs drift until ctx ends. It returns an
// error if the first apply fails (a config that cannot be applied is not
// guarded). Stopping changes nothing in the kernel.
func (d *Daemon) Run(ctx context.Context) error {
	defer close(d.stopped)
	defer d.releaseFirewall() // hold.go: the table stays (fail closed)
	d.cfgStamp = stampOf(d.e.ConfigFile())
	cfg, err := d.e.LoadConfig()
	if err != nil {
		return err
	}
	d.cfg = cfg
	d.mu.Lock()
	d.status.Started = time.Now()
	d.mu.Unlock()
	defer d.stopWatching()
	// Watch before the first apply: nothing that happens after it is missed.
	if err := d.watch(d.e.Netns); err != nil {
		return err
	}
	// A domain's namespace deleted (`ip netns del`) lives on while its
	// watcher holds it, and nothing changes in this namespace until it
	// goes: the names under /run/netns are watched too.
	nsw, err := kernel.WatchNamespaces(d.events)
	if err != nil {
		return fmt.Errorf("watching %s: %w", kernel.NetnsDir, err)
	}
	defer nsw.Close()
	d.healthChanged = make(chan struct{}, 1)
	d.prober = health.New(health.SocketProbe(d.e.Netns), d.log)
	d.prober.OnChange = func(string, health.State) {
		select {
		case d.healthChanged <- struct{}{}:
		default:
		}
	}
	again, err := d.check(kernel.WatchEvent{}, true)
	if err != nil {
		return fmt.Errorf("first apply: %w", err)
	}
	d.prober.Start(ctx)
	if d.opts.Listen {
		srv, err := d.listen()
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	d.notify("READY=1")
	d.log.Info("running", "netns", d.status.Netns, "config", d.e.ConfigFile())

	var (
		timer   = time.NewTimer(time.Hour)
		pending bool
		cause   kernel.WatchEvent
	)
	timer.Stop()
	schedule := func(at time.Time) {
		timer.Reset(max(time.Until(at), 0))
	}
	if !again.IsZero() {
		pending = true
		schedule(again)
	}
	for {
		select {
		case <-ctx.Done():
			d.notify("STOPPING=1")
			d.log.Info("stopping; the kernel keeps what tunroute made")
			return nil
		case ev := <-d.events:
			d.mu.Lock()
			d.status.Events++
			if ev.Kind == kernel.WatchLost {
				d.status.Resyncs++
			}
			d.mu.Unlock()
			if ev.Kind == kernel.WatchNamespace {
				w := d.watchers[ev.Netns]
				if !ev.Deleted || w == nil || ev.Netns == d.e.Netns {
					continue // not a domain of this daemon's
				}
				// Let the namespace go now; the check makes it again.
				d.unwatch(ev.Netns, w)
				delete(d.watchers, ev.Netns)
				d.e.Domains.Forget()
				d.setWatching()
			}
			if ev.At.Before(d.lastRead) {
				continue // the last read of the system saw it already
			}
			if ev.Kind != kernel.WatchLost && ev.Kind != kernel.WatchNamespace && !d.interest.wants(ev) {
				continue
			}
			d.count(&d.status.Relevant)
			d.log.Debug("event", "what", describe(ev))
			if cause.At.IsZero() {
				cause = ev
			}
			if !pending {
				pending = true
				at := ev.At.Add(d.opts.Debounce)
				if ev.At.Before(d.holdUntil) {
					// A fight is on: whatever changes meanwhile is looked
					// at once a second, not at every event.
					at = maxTime(at, d.lastRead.Add(busyInterval))
				}
				schedule(at)
			}
		case reply := <-d.pings:
			close(reply)
		case c := <-d.applies:
			a := d.apply()
			d.count(&d.status.Applies)
			c.reply <- a
			if !pending {
				pending = true
				schedule(time.Now().Add(d.opts.Debounce))
			}
		case c := <-d.hooks:
			c.reply <- d.hook(c)
			// A check follows (empty unless the world moved meanwhile):
			// it learns the new objects' events and the domains to watch.
			if !pending {
				pending = true
				schedule(time.Now().Add(d.opts.Debounce))
			}
		case <-d.healthChanged:
			// A health check changed its verdict: switch now.
			again, _ := d.check(kernel.WatchEvent{}, true)
			if !again.IsZero() && !pending {
				pending = true
				schedule(again)
			}
		case reply := <-d.reloads:
			err := d.reload()
			if err == nil {
				if again, err = d.check(kernel.WatchEvent{}, true); err == nil && !again.IsZero() {
					pending = true
					schedule(again)
				}
			}
			reply <- err
		case <-timer.C:
			pending = false
			again, _ := d.check(cause, false)
			cause = kernel.WatchEvent{}
			if !again.IsZero() {
				pending = true
				schedule(again)
			}
		}
	}
}

// Alive says whether the daemon's loop answers within timeout (the
// systemd watchdog's question).
func (d *Daemon) Alive(timeout time.Duration) bool {
	reply := make(chan struct{})
	select {
	case d.pings <- reply:
		<-reply
		return true
	case <-time.After(timeout):
		return false
	}
}

// Reload reads the config again and applies it; the error says why the
// old config is kept.
func (d *Daemon) Reload() error {
	reply := make(chan error, 1)
	d.reloads <- reply
	return <-reply
}

func (d *Daemon) reload() error {
	d.notify("RELOADING=1")
	defer d.notify("READY=1")
	d.cfgStamp = stampOf(d.e.ConfigFile())
	cfg, err := d.e.LoadConfig()
	if err != nil {
		d.setError(err)
		d.log.Error("reload: the config is not valid; keeping the one in force", "err", err)
		return err
	}
	d.cfg = cfg
	d.log.Info("reload: config read", "config", d.e.ConfigFile())
	return nil
}

// fileStamp tells whether a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

// configSettle is how long the config file must be left alone before the
// daemon follows it: an editor or a script that writes it in place
// (truncate, then write) shows a short or empty file in between, which
// may even load, and following that would take down what the config
// makes (the kill switch with it).
const configSettle = 250 * time.Millisecond

// followConfig adopts the config file when it changed since it was read:
// `tunroute apply` and the hooks read the file, and the daemon must not
// undo what they applied from it. A file that does not load is not
// adopted (the error is logged once), nor an empty one (`tunroute down`
// takes everything down), nor one changed less than configSettle ago or
// while it was read: then it returns when to look again.
func (d *Daemon) followConfig() (again time.Time) {
	path := d.e.ConfigFile()
	st := stampOf(path)
	if st == d.cfgStamp {
		return time.Time{}
	}
	if settled := st.mod.Add(configSettle); time.Now().Before(settled) {
		return settled
	}
	if st.size == 0 {
		d.cfgStamp = st
		d.log.Error("the config file is empty; keeping the config in force (tunroute down takes everything down)", "config", path)
		return time.Time{}
	}
	cfg, err := d.e.LoadConfig()
	if now := stampOf(path); now != st {
		return time.Now().Add(configSettle) // written while it was read
	}
	d.cfgStamp = st
	if err != nil {
		d.setError(err)
		d.log.Error("the config file changed and does not load; keeping the config in force", "err", err)
		return time.Time{}
	}
	d.cfg = cfg
	d.log.Info("the config file changed; following it", "config", path)
	return time.Time{}
}

// Status is a snapshot of the daemon's figures.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	s.Uptime = time.Since(s.Started).Round(time.Second).String()
	s.Repairs = map[string]int{}
	for k, v := range d.status.Repairs {
		s.Repairs[k] = v
	}
	s.Fights = slices.Clone(d.status.Fights)
	s.Watching = slices.Clone(d.status.Watching)
	if d.prober != nil {
		s.Health = d.prober.Status()
	}
	if d.routes != nil {
		s.RouteReadsCached, s.RouteReadsKernel = d.routes.Stats()
	}
	return s
}

// fail records an error, and logs it unless it is the one logged last
// (a conflict that stays must not fill the log).
func (d *Daemon) fail(what string, err error) {
	d.setError(err)
	d.setInSync(false, time.Now())
	if msg := what + ": " + err.Error(); msg != d.lastLogged {
		d.lastLogged = msg
		d.log.Error(what, "err", err)
	}
}

func (d *Daemon) setError(err error) {
	d.mu.Lock()
	d.status.LastError = time.Now().UTC().Format(time.RFC3339) + ": " + err.Error()
	d.mu.Unlock()
}

// count adds one to a counter of the status (a field of d.status).
func (d *Daemon) count(n *uint64) {
	d.mu.Lock()
	*n++
	d.mu.Unlock()
}

// check plans against the kernel and applies the plan if it is not
// empty. first: the start or a reload (the plan is logged whole, and
// back-off does not apply). It returns when to check again (zero: when
// an event comes).
func (d *Daemon) check(cause kernel.WatchEvent, first bool) (again time.Time, err error) {
	unlock, err := d.e.Lock()
	if err != nil {
		d.setError(err)
		return time.Time{}, err
	}
	defer unlock()
	d.count(&d.status.Checks)
	t0 := time.Now()
	d.lastRead = t0
	if at := d.followConfig(); !at.IsZero() {
		// Checked with the config in force; looked at again once settled.
		defer func() {
			if again.IsZero() || at.Before(again) {
				again = at
			}
		}()
	}
	f, err := d.e.LoadFacts()
	if err != nil {
		d.fail("reading the VPN facts (trying again in a second)", err)
		return time.Now().Add(busyInterval), err
	}
	// Only what the plan depends on: beside a full foreign table, a
	// repair must not read it all (the plan widens the read if needed).
	s, err := d.e.ObserveForPlan(d.cfg, f, true)
	tObserved := time.Now()
	if err != nil {
		d.fail("reading the system (trying again in a second)", err)
		return time.Now().Add(busyInterval), err
	}
	defer s.Close()
	// A domain namespace someone deleted lives on while a watcher holds
	// it (with the pipe end in this namespace): let it go now.
	d.unwatchGone(s.Domains)
	d.prober.ObserveLinks(s.Observed)
	if v := health.WithPassiveVerdicts(d.prober.Verdicts(), health.WireGuardDown(s.Top(), identitiesOf(d.lastCompiled), time.Now()), f.Verdicts, time.Now()); len(v) > 0 || f.Health != nil {
		if err := f.RecordVerdicts(d.e, v); err != nil {
			d.fail("recording the health checks' verdict", err)
			return time.Now().Add(busyInterval), err
		}
	}
	c, err := s.Plan(d.cfg, f)
	if err != nil {
		// A conflict (another program's object where the config wants
		// tunroute's) is not fought: the next event that can matter
		// (that object going away) plans again.
		d.fail("cannot plan; waiting for the system to change", err)
		return time.Time{}, err
	}
	d.lastLogged = ""
	d.interest.update(c.System)
	now := time.Now()
	d.log.Debug("checked", "read", tObserved.Sub(t0).Round(time.Microsecond), "planned", now.Sub(tObserved).Round(time.Microsecond), "steps", len(c.Plan.Steps))
	d.fights.forget(now)
	d.prober.Update(health.SystemProbes(c.System))
	if c.Empty() {
		d.setInSync(true, now)
		d.holdFirewall() // hold.go
		d.lastCompiled, d.lastSystem = c.Compiled(), c.System
		again, err := d.watchDomains(s.Domains)
		return d.warm(again), err
	}
	objs := objectsOf(c.Plan)
	if !first {
		if held, until := d.fights.hold(objs, now); held {
			d.setInSync(false, now)
			d.holdUntil = until
			return until, nil
		}
	}
	if first {
		d.log.Info("applying", "plan", c.Plan.Text())
	}
	_, err = s.Apply(c)
	done := time.Now()
	rep := Repair{Objects: objs, Cause: cause, Err: err}
	if !cause.At.IsZero() {
		rep.Latency = done.Sub(cause.At)
	}
	if !first {
		d.metrics.observe(rep)
	}
	if err != nil {
		d.setError(err)
		d.setInSync(false, done)
		d.log.Error("repair failed, nothing was changed", "err", err, "plan", strings.Join(c.Plan.Lines(), "; "))
		if d.opts.OnRepair != nil && !first {
			d.opts.OnRepair(rep)
		}
		return done.Add(busyInterval), err
	}
	d.setInSync(true, done)
	d.holdFirewall() // hold.go
	// Connections through an identity the traffic left (a failover) are
	// forgotten, so that they start again through the new one.
	for ns, gone := range health.AbandonedByNamespace(d.lastSystem, c.System) {
		if _, err := kernel.ForgetConnections(ns, gone); err != nil {
			d.log.Warn("forgetting the connections of the identity the traffic left", "netns", netnsname.Word(ns), "addresses", gone, "err", err)
		}
	}
	d.lastCompiled, d.lastSystem = c.Compiled(), c.System
	if !first {
		d.mu.Lock()
		for _, o := range objs {
			d.status.Repairs[o.Kind]++
		}
		d.mu.Unlock()
		d.log.Info("repaired", "objects", keys(objs), "cause", describe(cause), "latency", rep.Latency.Round(time.Microsecond))
		for _, n := range d.fights.repaired(objs, done) {
			competitor := n.Competitor
			if competitor == "" {
				competitor = "unknown (the kernel does not say who deletes an object)"
			}
			d.log.Warn("another program keeps undoing an object of tunroute's; repairing it with back-off",
				"object", n.Object, "repairs", n.Repairs, "competing_protocol", competitor,
				"next_repair_after", n.Backoff, "fix", fixFor(n.Kind, n.Competitor))
		}
		if d.opts.OnRepair != nil {
			d.opts.OnRepair(rep)
		}
	}
	doms := s.Domains
	if c.Plan.ChangesNamespaces() {
		if doms, err = d.e.Host.DomainNamespaces(d.e.Netns); err != nil {
			return time.Time{}, err
		}
	}
	again, err = d.watchDomains(doms)
	return d.warm(again), err
}

// warmAfter is how long after a check whose read the route cache could
// not keep (its own apply's events, or changes that came while it read)
// the daemon reads again, so that the next hook or repair finds the
// routes kept; warmEvery is the least time between two such reads, so a
// table that keeps changing where plans look is not read in a loop.
const (
	warmAfter = 50 * time.Millisecond
	warmEvery = time.Second
)

// warm returns when to check next: again, or soon if the route cache
// does not hold the routes of this namespace's plans.
func (d *Daemon) warm(again time.Time) time.Time {
	if !again.IsZero() || !d.routes.Serves(d.e.Netns) || d.routes.Holds(d.e.Netns) || time.Since(d.lastWarm) < warmEvery {
		return again
	}
	d.lastWarm = time.Now()
	return d.lastWarm.Add(warmAfter)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (d *Daemon) setInSync(ok bool, now time.Time) {
	d.mu.Lock()
	d.status.InSync = ok
	d.status.Fights = d.fights.active(now)
	sort.Strings(d.status.Fights)
	d.mu.Unlock()
}

func keys(objs []object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

func describe(ev kernel.WatchEvent) string {
	if ev.Kind == "" {
		return "start"
	}
	verb := "changed"
	if ev.Deleted {
		verb = "deleted"
	}
	if ev.Kind == kernel.WatchNamespace {
		return fmt.Sprintf("%s %s", netnsname.Word(ev.Netns), verb)
	}
	s := fmt.Sprintf("%s %s in %s", ev.Kind, verb, netnsname.Word(ev.Netns))
	if ev.Kind == kernel.WatchRoute || ev.Kind == kernel.WatchRule {
		if ev.Dst.IsValid() {
			s += " " + ev.Dst.String()
		}
		s += " proto " + ev.Protocol.String()
	}
	if ev.Kind == kernel.WatchFirewall && ev.FirewallTable != "" {
		s += " table " + ev.FirewallTable
	}
	return s
}

// watch starts a watcher on a namespace.
func (d *Daemon) watch(ns string) error {
	if _, ok := d.watchers[ns]; ok {
		return nil
	}
	var w *kernel.Watcher
	var err error
	if d.routes != nil {
		w, err = d.routes.Watch(ns, d.events)
	} else {
		w, err = kernel.Watch(ns, d.events)
	}
	if err != nil {
		return fmt.Errorf("watching %s: %w", netnsname.Word(ns), err)
	}
	d.watchers[ns] = w
	d.setWatching()
	return nil
}

// unwatch closes the watcher of ns.
func (d *Daemon) unwatch(ns string, w *kernel.Watcher) {
	if d.routes != nil {
		d.routes.Unwatch(ns)
	}
	w.Close()
}

// unwatchGone stops watching the domain namespaces not in doms.
func (d *Daemon) unwatchGone(doms []string) {
	for ns, w := range d.watchers {
		if ns != d.e.Netns && !slices.Contains(doms, ns) {
			d.unwatch(ns, w)
			delete(d.watchers, ns)
		}
	}
}

// watchDomains keeps one watcher per domain namespace tunroute made
// (doms): new domains are watched, deleted ones dropped. A new watcher
// asks for one more check (what changed before it listened).
func (d *Daemon) watchDomains(doms []string) (time.Time, error) {
	var errs []error
	var again time.Time
	for _, ns := range doms {
		if _, ok := d.watchers[ns]; ok {
			continue
		}
		if err := d.watch(ns); err != nil {
			errs = append(errs, err)
		}
		again = time.Now().Add(d.opts.Debounce)
	}
	d.unwatchGone(doms)
	d.setWatching()
	return again, errors.Join(errs...)
}

func (d *Daemon) setWatching() {
	var names []string
	for ns := range d.watchers {
		names = append(names, netnsname.Word(ns))
	}
	sort.Strings(names)
	d.mu.Lock()
	d.status.Watching = names
	d.mu.Unlock()
}

func (d *Daemon) stopWatching() {
	for ns, w := range d.watchers {
		d.unwatch(ns, w)
		delete(d.watchers, ns)
	}
}

// identitiesOf are a compile result's identities (none before the first).
func identitiesOf(r *compile.Result) []compile.Identity {
	if r == nil {
		return nil
	}
	return r.Identities
}
