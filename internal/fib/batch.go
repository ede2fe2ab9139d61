package fib

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
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
}

func (f *FIB) newBatchWorker(trace bool) *batchWorker {
	return &batchWorker{f: f, sc: newScratch(f), words: make([]string, 0, 32), trace: trace}
}

// block answers every line of in, appending to out.
func (bw *batchWorker) block(in, out []byte) ([]byte, int) {
	n := 0
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		var line []byte
		if i < 0 {
			line, in = in, nil
		} else {
			line, in = in[:i], in[i+1:]
		}
		var ok bool
		out, ok = bw.line(line, out)
		if ok {
			n++
		}
	}
	return out, n
}

// line answers one line; ok is false for blank and comment lines.
func (bw *batchWorker) line(line, out []byte) ([]byte, bool) {
	words := bw.words[:0]
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
			// this line (names are replaced by the FIB's own below).
			words = append(words, unsafe.String(&line[i], j-i))
		}
		i = j
	}
	bw.words = words[:0]
	if len(words) == 0 || words[0][0] == '#' {
		return out, false
	}
	if len(words) >= 2 && words[0] == "route" && words[1] == "get" {
		words = words[2:]
	}
	q, err := parseWords(words)
	if err == nil {
		err = bw.f.internNames(&q)
	}
	if err != nil {
		out = append(out, `{"query":`...)
		out = appendJSONString(out, string(bytes.TrimSpace(line)))
		out = append(out, `,"error":`...)
		out = appendJSONString(out, err.Error())
		return append(out, '}', '\n'), true
	}
	bw.f.lookup(&q, &bw.r, bw.sc)
	out = bw.r.appendJSON(out, bw.trace)
	return append(out, '\n'), true
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
