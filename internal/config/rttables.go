package config

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// rtTablesFiles are read in this order; later files win, as in iproute2.
var rtTablesFiles = []string{"/usr/share/iproute2/rt_tables", "/etc/iproute2/rt_tables"}

// SystemTableNames reads iproute2's table names (rt_tables and
// rt_tables.d/*.conf). Missing files are fine: the three kernel names are
// always known.
func SystemTableNames() map[string]uint32 {
	names := map[string]uint32{"main": 254, "local": 255, "default": 253}
	for _, f := range rtTablesFiles {
		readRTTables(f, names)
		matches, _ := filepath.Glob(f + ".d/*.conf")
		for _, m := range matches {
			readRTTables(m, names)
		}
	}
	return names
}

func readRTTables(path string, names map[string]uint32) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 0, 32)
		if err != nil {
			continue
		}
		names[fields[1]] = uint32(n)
	}
}
