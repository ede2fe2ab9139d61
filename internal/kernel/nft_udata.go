package kernel

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tunroute/tunroute/internal/state"
)

// A rule's userdata is a list of TLVs (type, length, value; one byte each
// for type and length). nft shows type 0 (NFTNL_UDATA_RULE_COMMENT, a
// NUL-terminated string) as the rule's comment and skips types it does
// not know; tunroute keeps its record of the rule in one of those.
//
// The kernel keeps at most 256 bytes of userdata per rule
// (NFT_USERDATA_MAXLEN). When the rule's canonical JSON does not fit, the
// record leaves out the lists that the rule's sets hold (the kernel has
// them: Observe reads them back) and says in which order they were given.
const (
	udataComment = 0
	udataRecord  = 0x74 // 't'
	maxUserdata  = 256
)

// fwRecord is what a rule's userdata records of its FwRule besides the
// comment (which is in the comment TLV) and the counter values.
type fwRecord struct {
	state.FwRule
	// FromSets names the lists left out of the record: they are read
	// back from the rule's sets (see setFields for which set is whose).
	FromSets []string `json:"from_sets,omitempty"`
	// Order gives, for a list read back from a set, where each element
	// stands in the set's ascending order (see runs), when that is not the
	// order the list was given in.
	Order map[string]string `json:"order,omitempty"`
}

// runs writes a list of indexes compactly: maximal runs of consecutive
// numbers, ascending or descending, as "a-b", lone numbers as "a", joined
// by commas. A list given in reverse is "n-0".
func runs(p []int) string {
	var b strings.Builder
	for i := 0; i < len(p); {
		j := i
		if i+1 < len(p) && (p[i+1] == p[i]+1 || p[i+1] == p[i]-1) {
			step := p[i+1] - p[i]
			for j+1 < len(p) && p[j+1] == p[j]+step {
				j++
			}
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", p[i], p[j])
		} else {
			fmt.Fprintf(&b, "%d", p[i])
		}
		i = j + 1
	}
	return b.String()
}

func parseRuns(s string) ([]int, error) {
	var p []int
	for _, r := range strings.Split(s, ",") {
		var a, b int
		n, _ := fmt.Sscanf(r, "%d-%d", &a, &b)
		if a < 0 || b < 0 || a-b > 1<<16 || b-a > 1<<16 {
			return nil, fmt.Errorf("order %q", s)
		}
		if n == 2 && r == fmt.Sprintf("%d-%d", a, b) {
			for step := 1 - 2*boolInt(b < a); ; a += step {
				p = append(p, a)
				if a == b {
					break
				}
			}
		} else if n == 1 && r == fmt.Sprint(a) {
			p = append(p, a)
		} else {
			return nil, fmt.Errorf("order %q", s)
		}
		if len(p) > 1<<16 {
			return nil, fmt.Errorf("order %q too long", s)
		}
	}
	return p, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ruleUserdata encodes r's comment and record for the rule code encodes.
func ruleUserdata(r *state.FwRule, code *ruleCode) ([]byte, error) {
	var ud []byte
	if r.Comment != "" {
		if strings.IndexByte(r.Comment, 0) >= 0 {
			return nil, fmt.Errorf("comment %q contains NUL", r.Comment)
		}
		if len(r.Comment) > 254 {
			return nil, fmt.Errorf("comment of %d bytes (at most 254)", len(r.Comment))
		}
		ud = append(ud, udataComment, byte(len(r.Comment)+1))
		ud = append(append(ud, r.Comment...), 0)
	}
	rec := fwRecord{FwRule: *r}
	rec.Comment, rec.Packets, rec.Bytes = "", 0, 0
	j, err := json.Marshal(&rec)
	if err != nil {
		return nil, err
	}
	if len(ud)+2+len(j) > maxUserdata {
		full := len(j)
		// First the lists that read back exactly from their sets (as a
		// permutation of the set's contents), then, if need be, the others
		// (overlapping prefixes, duplicates), which read back as the set's
		// contents.
		for _, exact := range []bool{true, false} {
			for _, s := range code.sets {
				orig := getList(&rec.FwRule, s.field)
				if slices.Contains(rec.FromSets, s.field) {
					continue
				}
				canon, err := setValues(s.field, s.elems)
				if err != nil {
					return nil, err
				}
				perm, ok := orderOf(orig, canon)
				if ok != exact {
					continue
				}
				if perm != nil {
					if rec.Order == nil {
						rec.Order = map[string]string{}
					}
					rec.Order[s.field] = runs(perm)
				}
				clearList(&rec.FwRule, s.field)
				rec.FromSets = append(rec.FromSets, s.field)
			}
			if j, err = json.Marshal(&rec); err != nil {
				return nil, err
			}
			if len(ud)+2+len(j) <= maxUserdata {
				break
			}
		}
		if len(ud)+2+len(j) > maxUserdata {
			return nil, fmt.Errorf("too large to record: its comment and record take %d bytes (%d without its lists), the kernel keeps %d",
				len(ud)+2+full, len(ud)+2+len(j), maxUserdata)
		}
	}
	ud = append(ud, udataRecord, byte(len(j)))
	return append(ud, j...), nil
}

// parseUserdata returns the comment and the record's JSON (nil if none).
func parseUserdata(ud []byte) (comment string, record []byte) {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if 2+n > len(ud) {
			break
		}
		v := ud[2 : 2+n]
		switch typ {
		case udataComment:
			comment = cstring(v)
		case udataRecord:
			record = v
		}
		ud = ud[2+n:]
	}
	return comment, record
}
