package daemon

import (
	"time"
)

// Fight accounting: an object that keeps being undone is repaired with
// exponential back-off, so two programs that disagree never spin.
const (
	// fightAfter repairs of one object, each within fightWindow of the
	// previous one, make a fight.
	fightAfter  = 3
	fightWindow = 10 * time.Second
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 30 * time.Second
)

type fight struct {
	repairs    int
	last       time.Time
	backoff    time.Duration
	until      time.Time
	competitor string
	kind       string
	// warnAt is the repair count of the next warning about a fight that
	// is not backed off (the kill switch's table).
	warnAt int
}

// kindFirewall is the kind of tunroute's nftables table (the kill switch).
const kindFirewall = "firewall"

type fights struct {
	m     map[string]*fight
	after int
}

func newFights(after int) *fights {
	if after <= 0 {
		after = fightAfter
	}
	return &fights{m: map[string]*fight{}, after: after}
}

// hold says whether every object of a repair is in back-off, and until
// when the first of them is.
func (f *fights) hold(objs []object, now time.Time) (bool, time.Time) {
	var first time.Time
	for _, o := range objs {
		fi := f.m[o.Key]
		if fi == nil || !now.Before(fi.until) {
			return false, time.Time{}
		}
		if first.IsZero() || fi.until.Before(first) {
			first = fi.until
		}
	}
	return len(objs) > 0, first
}

// fightNews is a fight that started or grew: what the warning says.
type fightNews struct {
	Object, Kind, Competitor string
	Repairs                  int
	Backoff                  time.Duration
}

// repaired counts a repair of objs and returns the fights whose back-off
// grew (each is warned about once per doubling, so the log stays short).
func (f *fights) repaired(objs []object, now time.Time) []fightNews {
	var news []fightNews
	for _, o := range objs {
		fi := f.m[o.Key]
		if fi == nil || now.Sub(fi.last) > fightWindow+fi.backoff {
			fi = &fight{kind: o.Kind}
			f.m[o.Key] = fi
		}
		fi.repairs++
		fi.last = now
		if o.Competitor != "" {
			fi.competitor = o.Competitor
		}
		if fi.repairs < f.after {
			continue
		}
		if o.Kind == kindFirewall {
			// The kill switch does not back off: while its table is gone
			// nothing stops packets in clear (measured: every packet of a
			// socket bound to the uplink leaves during the repair window).
			// In a fight its repairs are only spaced by minBackoff, which
			// bounds both the window and the CPU (at most 10 repairs a
			// second). It is warned about at the 3rd, 6th, 12th... repair.
			fi.backoff = minBackoff
			fi.until = now.Add(minBackoff)
			if fi.repairs == fi.warnAt || fi.warnAt == 0 {
				fi.warnAt = 2 * fi.repairs
				news = append(news, fightNews{Object: o.Key, Kind: fi.kind, Competitor: fi.competitor, Repairs: fi.repairs, Backoff: minBackoff})
			}
			continue
		}
		grew := fi.backoff < maxBackoff
		fi.backoff = min(max(2*fi.backoff, minBackoff), maxBackoff)
		fi.until = now.Add(fi.backoff)
		if grew {
			news = append(news, fightNews{Object: o.Key, Kind: fi.kind, Competitor: fi.competitor, Repairs: fi.repairs, Backoff: fi.backoff})
		}
	}
	return news
}

// forget drops fights that have been quiet for long.
func (f *fights) forget(now time.Time) {
	for k, fi := range f.m {
		if now.Sub(fi.last) > fightWindow+fi.backoff {
			delete(f.m, k)
		}
	}
}

// active lists the objects in back-off now.
func (f *fights) active(now time.Time) []string {
	var out []string
	for k, fi := range f.m {
		if now.Before(fi.until) {
			out = append(out, k)
		}
	}
	return out
}
