package testns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Binary builds cmd/tunroute once per test process and returns its path;
// TUNROUTE_TEST_BIN names a binary built elsewhere (another revision) to
// use instead. The directory is readable by the VPN daemons' scripts
// whatever the umask. Call RemoveBinary from TestMain when done.
func Binary() (string, error) {
	buildOnce.Do(func() {
		if b := os.Getenv("TUNROUTE_TEST_BIN"); b != "" {
			buildBin, buildErr = filepath.Abs(b)
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			if _, err2 := os.Stat("/usr/local/go/bin/go"); err2 != nil {
				buildErr = errors.New("no go command to build cmd/tunroute")
				return
			}
			gobin = "/usr/local/go/bin/go"
		}
		out, err := exec.Command(gobin, "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "tr-bin-"); err != nil {
			buildErr = err
			return
		}
		os.Chmod(buildDir, 0o755)
		bin := filepath.Join(buildDir, "tunroute")
		cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/tunroute")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tunroute: %v\n%s", err, b)
			return
		}
		buildBin = bin
	})
	return buildBin, buildErr
}

// RemoveBinary removes what Binary built.
func RemoveBinary() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}
