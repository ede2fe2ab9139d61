package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// The metrics endpoint speaks just enough HTTP/1.x for a scraper: one
// request per connection (answered with Connection: close), GET or HEAD
// of /metrics. net/http would do it at the cost of 3.5 MB of binary.

const (
	// metricsConnTimeout bounds a whole exchange: a client that sends
	// nothing does not hold a connection.
	metricsConnTimeout = 10 * time.Second
	// metricsMaxHeader bounds the request's head.
	metricsMaxHeader = 16 << 10
	// metricsMaxConns scrapes at a time (each reads the nftables table).
	metricsMaxConns = 4
)

// serveMetrics answers scrapes on l until it is closed.
func (d *Daemon) serveMetrics(l net.Listener) {
	slots := make(chan struct{}, metricsMaxConns)
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				d.log.Error("metrics: accepting a connection; serving stopped", "err", err)
			}
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // busy: the scraper tries again at its next interval
			continue
		}
		go func() {
			defer func() { <-slots }()
			defer c.Close()
			c.SetDeadline(time.Now().Add(metricsConnTimeout))
			if err := answerScrape(c, c, d.writeMetricsNow); err != nil {
				d.log.Debug("metrics: a scrape failed", "peer", c.RemoteAddr(), "err", err)
			}
		}()
	}
}

// answerScrape reads one request from r and writes the answer to w;
// body writes the metrics.
func answerScrape(r io.Reader, w io.Writer, body func(io.Writer) error) error {
	method, target, err := readRequestHead(bufio.NewReaderSize(io.LimitReader(r, metricsMaxHeader), 4096))
	if err != nil {
		respond(w, "400 Bad Request", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), false)
		return err
	}
	path, _, _ := strings.Cut(target, "?")
	switch {
	case method != "GET" && method != "HEAD":
		return respond(w, "405 Method Not Allowed", "text/plain; charset=utf-8", []byte("only GET and HEAD\n"), false, "Allow: GET, HEAD")
	case path != "/metrics":
		return respond(w, "404 Not Found", "text/plain; charset=utf-8", []byte("tunroute's metrics are at /metrics\n"), method == "HEAD")
	}
	var b bytes.Buffer
	if err := body(&b); err != nil {
		return respond(w, "500 Internal Server Error", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), method == "HEAD")
	}
	return respond(w, "200 OK", "text/plain; version=0.0.4; charset=utf-8", b.Bytes(), method == "HEAD")
}

// readRequestHead reads the request line and the header lines up to the
// empty line; only the method and the target are used.
func readRequestHead(br *bufio.Reader) (method, target string, err error) {
	line, err := readLine(br)
	if err != nil {
		return "", "", fmt.Errorf("reading the request: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", "", fmt.Errorf("not an HTTP/1 request line: %q", line)
	}
	for {
		h, err := readLine(br)
		if err != nil {
			return "", "", fmt.Errorf("reading the request's header: %w", err)
		}
		if h == "" {
			return f[0], f[1], nil
		}
	}
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("line too long")
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func respond(w io.Writer, status, contentType string, body []byte, head bool, extra ...string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n", status, contentType, len(body))
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if !head {
		b.Write(body)
	}
	_, err := w.Write(b.Bytes())
	return err
}
