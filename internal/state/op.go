package state

// Action is what an Op does to one kernel object.
type Action uint8

const (
	Add Action = iota + 1
	Delete
	// Replace changes an object in place (NLM_F_REPLACE); Prev holds the
	// object it replaces so the change can be undone.
	Replace
)

func (a Action) String() string {
	switch a {
	case Add:
		return "add"
	case Delete:
		return "delete"
	case Replace:
		return "replace"
	}
	return "?"
}

// Op is one change to one kernel object. Exactly one of Link, Addr,
// Route, Rule and Firewall is set.
type Op struct {
	Action Action
	Link   *Link
	Addr   *Addr
	Route  *Route
	Rule   *Rule
	// Firewall is tunroute's whole nftables table: added, replaced (in one
	// transaction) or deleted as a unit.
	Firewall *Firewall
	// RouteSet adds or deletes many routes in one op; it takes effect
	// for all of them or none (an executor undoes a part-done set).
	RouteSet *RouteSet
	// PrevRoute, PrevAddr, PrevLink and PrevFirewall are what a Replace overwrites.
	PrevRoute    *Route
	PrevAddr     *Addr
	PrevLink     *Link
	PrevFirewall *Firewall
}

// Inverse returns the op that undoes o.
func (o Op) Inverse() Op {
	switch o.Action {
	case Add:
		o.Action = Delete
	case Delete:
		o.Action = Add
	case Replace:
		o.Route, o.PrevRoute = o.PrevRoute, o.Route
		o.Addr, o.PrevAddr = o.PrevAddr, o.Addr
		o.Link, o.PrevLink = o.PrevLink, o.Link
		o.Firewall, o.PrevFirewall = o.PrevFirewall, o.Firewall
	}
	return o
}

// Object returns a short description of the object kind.
func (o Op) Object() string {
	switch {
	case o.Link != nil:
		return "link"
	case o.Addr != nil:
		return "address"
	case o.Route != nil:
		return "route"
	case o.Rule != nil:
		return "rule"
	case o.Firewall != nil:
		return "firewall"
	case o.RouteSet != nil:
		return "routes"
	}
	return "nothing"
}

// String renders the op in iproute2 words, e.g.
// "add route 0.0.0.0/1 via 10.8.0.1 dev tun0 table main".
func (o Op) String() string {
	var obj string
	switch {
	case o.Link != nil:
		obj = o.Link.String()
	case o.Addr != nil:
		obj = o.Addr.String()
	case o.Route != nil:
		obj = o.Route.String()
	case o.Rule != nil:
		obj = o.Rule.String()
	case o.Firewall != nil:
		obj = o.Firewall.Summary()
	case o.RouteSet != nil:
		obj = o.RouteSet.Summary()
	}
	return o.Action.String() + " " + o.Object() + " " + obj
}
