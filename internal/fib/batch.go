package fib

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// BatchOptions tune Batch.
type BatchOptions struct {
	// Workers answering queries in parallel; 0 means GOMAXPROCS. Output
	// order is always input order.
	Workers int
	// NoTrace leaves "trace" out of the JSON objects.
	NoTrace bool
}

// Batch reads queries from in, one per line in ParseQuery's words (an
// optional leading "route get" is accepted, so `ip -batch` files work
// as they are; blank lines and lines starting with '#' are skipped), and
// writes one JSON object per query to out, one per line, in input order.
// A line that does not parse gives {"query":..., "error":...}. It returns
// the number of objects written.
func (f *FIB) Batch(in io.Reader, out io.Writer, opt BatchOptions) (int, error) {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type block struct {
		in, out []byte
		n       int
		done    chan struct{}
	}
	const blockSize = 64 << 10
	free := make(chan *block, 4*workers)
	for i := 0; i < 4*workers; i++ {
		free <- &block{in: make([]byte, 0, blockSize+4096), out: make([]byte, 0, 4*blockSize), done: make(chan struct{}, 1)}
	}
	work := make(chan *block, 4*workers)
	order := make(chan *block, 4*workers)
	var readErr error
	// reader: cut the input into blocks of whole lines
	go func() {
		defer close(work)
		defer close(order)
		br := bufio.NewReaderSize(in, 256<<10)
		var carry []byte
		for {
			b := <-free
			b.in = append(b.in[:0], carry...)
			carry = carry[:0]
			eof := false
			for len(b.in) < blockSize {
				chunk, err := br.ReadSlice('\n')
				b.in = append(b.in, chunk...)
				if err == bufio.ErrBufferFull {
					continue
				}
				if err != nil {
					if err != io.EOF {
						readErr = err
					}
					eof = true
					break
				}
			}
			if len(b.in) > 0 {
				work <- b
				order <- b
			} else {
				free <- b
			}
			if eof {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bw := f.newBatchWorker(!opt.NoTrace)
			for b := range work {
				b.out, b.n = bw.block(b.in, b.out[:0])
				b.done <- struct{}{}
			}
		}()
	}
	bout := bufio.NewWriterSize(out, 256<<10)
	total := 0
	var werr error
	for b := range order {
		<-b.done
		if werr == nil {
			if _, err := bout.Write(b.out); err != nil {
				werr = err
			}
		}
		total += b.n
		free <- b
	}
	wg.Wait()
	if werr == nil {
		werr = bout.Flush()
	}
	if werr != nil {
		return total, werr
	}
	return total, readErr
}

// batchWorker answers lines with reusable memory.
type batchWorker struct {
	f     *FIB
	sc    *scratch
	r     Result
	words []string
	trace bool
	sink  int32
}

func (f *FIB) newBatchWorker(trace bool) *batchWorker {
	return &batchWorker{f: f, sc: newScratch(f), words: make([]string, 0, 32), trace: trace}
}

// batchGroup is how many lines are parsed ahead so that their table
// lookups' cache misses overlap (see warm).
const batchGroup = 16

var noWarm bool // for benchmarks

type parsedLine struct {
	line []byte
	q    Query
	err  error
	skip bool
}

// block answers every line of in, appending to out.
func (bw *batchWorker) block(in, out []byte) ([]byte, int) {
	n := 0
	var group [batchGroup]parsedLine
	for len(in) > 0 {
		g := 0
		for g < batchGroup && len(in) > 0 {
			i := bytes.IndexByte(in, '\n')
			var line []byte
			if i < 0 {
				line, in = in, nil
			} else {
				line, in = in[:i], in[i+1:]
			}
			p := &group[g]
			p.line = line
			p.q, p.err, p.skip = bw.parse(line)
			g++
		}
		bw.warm(group[:g])
		for i := 0; i < g; i++ {
			p := &group[i]
			if p.skip {
				continue
			}
			out = bw.answer(p, out)
			n++
		}
	}
	return out, n
}

// warm reads, for a group of queries, the main-table entries their
// lookups will need. The reads of different queries do not depend on each
// other, so the processor overlaps their cache misses; the lookups that
// follow then find the lines in cache.
func (bw *batchWorker) warm(group []parsedLine) {
	if noWarm {
		return
	}
	f := bw.f
	t4 := f.v4.tables[254]
	t6 := f.v6.tables[254]
	var sink int32
	for i := range group {
		p := &group[i]
		if p.skip || p.err != nil {
			continue
		}
		if a := p.q.To; a.Is4() {
			if t4 != nil {
				if nd, ok := t4.lookup(v4u(a)); ok {
					sink += t4.nodes[nd].class
				}
			}
		} else if t6 != nil {
			if nd, ok := t6.lpm.Lookup(a); ok {
				sink += t6.nodes[nd].first
			}
		}
	}
	bw.sink += sink
}

// line answers one line; ok is false for blank and comment lines.
func (bw *batchWorker) line(line, out []byte) ([]byte, bool) {
	var p parsedLine
	p.line = line
	p.q, p.err, p.skip = bw.parse(line)
	if p.skip {
		return out, false
	}
	return bw.answer(&p, out), true
}

func (bw *batchWorker) parse(line []byte) (Query, error, bool) {
	words, skip := batchWords(line, bw.words[:0])
	bw.words = words[:0]
	if skip {
		return Query{}, nil, true
	}
	q, err := parseWords(words)
	if err == nil {
		err = bw.f.internNames(&q)
	}
	return q, err, false
}

// batchWords splits a line of a batch into words, which alias the line,
// without a leading "route get" (ip -batch's); skip reports a blank or
// comment line.
func batchWords(line []byte, words []string) ([]string, bool) {
	for i := 0; i < len(line); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		if j > i {
			// The words alias the input block; nothing keeps them past
			// the block (names are replaced by the FIB's own).
			words = append(words, unsafe.String(&line[i], j-i))
		}
		i = j
	}
	if len(words) == 0 || words[0][0] == '#' {
		return words, true
	}
	if len(words) >= 2 && words[0] == "route" && words[1] == "get" {
		words = words[2:]
	}
	return words, false
}

// ParseBatchLine parses one line of a batch as Batch does; skip reports a
// blank or comment line. Device names are not checked (no FIB to check
// them against).
func ParseBatchLine(line []byte) (q Query, skip bool, err error) {
	words, skip := batchWords(line, nil)
	if skip {
		return Query{}, true, nil
	}
	q, err = parseWords(words)
	q.IIF, q.OIF = strings.Clone(q.IIF), strings.Clone(q.OIF) // not the line's
	return q, false, err
}

// AppendBatchError appends Batch's answer to a line that is not a query,
// with its newline.
func AppendBatchError(out, line []byte, err error) []byte {
	out = append(out, `{"query":`...)
	out = appendJSONString(out, string(bytes.TrimSpace(line)))
	out = append(out, `,"error":`...)
	out = appendJSONString(out, err.Error())
	return append(out, '}', '\n')
}

func (bw *batchWorker) answer(p *parsedLine, out []byte) []byte {
	if p.err != nil {
		return AppendBatchError(out, p.line, p.err)
	}
	bw.f.lookup(&p.q, &bw.r, bw.sc)
	out = bw.r.appendJSON(out, bw.trace)
	return append(out, '\n')
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// internNames replaces device names with the FIB's own strings (they may
// alias a reused buffer), or reports an unknown device like iproute2.
func (f *FIB) internNames(q *Query) error {
	if q.IIF != "" {
		l := f.byName[q.IIF]
		if l == nil {
			return &QueryError{Msg: "Cannot find device \"" + q.IIF + "\""}
		}
		q.IIF = l.name
	}
	if q.OIF != "" {
		l := f.byName[q.OIF]
		if l == nil {
			return &QueryError{Msg: "Cannot find device \"" + q.OIF + "\""}
		}
		q.OIF = l.name
	}
	return nil
}
