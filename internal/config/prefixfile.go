package config

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// readPrefixFile reads a route list: one prefix (or address) per line;
// blank lines and everything after '#' are ignored. A relative path is
// relative to the config file's directory. Errors name the list's file and
// line.
func readPrefixFile(configFile, name string) (string, []netip.Prefix, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(configFile), name)
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", nil, fmt.Errorf("cannot read the route list %s: %v", path, pe.Err)
		}
		return "", nil, err
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		p, err := ParsePrefix(text)
		if err != nil {
			return "", nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("%s:%d: %v", path, line+1, err)
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("the route list %s holds no prefix", path)
	}
	return path, out, nil
}
