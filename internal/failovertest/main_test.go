package failovertest

import (
	"os"
	"testing"

	"github.com/tunroute/tunroute/internal/testns"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testns.RemoveBinary()
	os.Exit(code)
}
