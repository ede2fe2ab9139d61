package testns

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"text/template"
)

// Buffer is a bytes.Buffer a child process writes while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Config fills the config template src (text/template; .P is the tests'
// namespace prefix, data adds keys; a missing key is an error) and
// writes it to dst.
func Config(dst, src, prefix string, data map[string]any) error {
	tmpl, err := template.ParseFiles(src)
	if err != nil {
		return err
	}
	d := map[string]any{"P": prefix}
	for k, v := range data {
		d[k] = v
	}
	var b bytes.Buffer
	if err := tmpl.Option("missingkey=error").Execute(&b, d); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}
