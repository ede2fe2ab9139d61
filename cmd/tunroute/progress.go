package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// progressBar draws one line on a terminal while a long apply runs: how
// many objects are done, the rate and the time left. It stays quiet when
// the output is not a terminal, and for short applies.
type progressBar struct {
	w        io.Writer
	start    time.Time
	last     time.Time
	drawn    bool
	minTotal int
}

// newProgressBar returns nil unless w is a terminal.
func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return &progressBar{w: w, minTotal: 20000}
}

// update is the kernel handle's progress callback.
func (p *progressBar) update(done, total int) {
	if p == nil || total < p.minTotal {
		return
	}
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	if done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(100 * time.Millisecond).String()
	}
	const width = 30
	fill := width * done / total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < fill {
			bar[i] = '='
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d %3d%%  %.0f/s  ETA %s   ", bar, done, total, 100*done/total, rate, eta)
	p.drawn = true
	if done == total {
		fmt.Fprint(p.w, "\n")
		p.start, p.drawn = time.Time{}, false
	}
}

// finish ends the line if the bar is still on it.
func (p *progressBar) finish() {
	if p != nil && p.drawn {
		fmt.Fprint(p.w, "\n")
		p.drawn = false
	}
}
