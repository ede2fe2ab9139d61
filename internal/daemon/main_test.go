package daemon

import (
	"os"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testns.RemoveBinary() // built for the status command's test
	os.Exit(code)
}
