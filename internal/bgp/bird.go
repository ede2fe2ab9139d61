package bgp

import (
	"bytes"
	"context"
	"fmt"
)

// birdEngine runs BIRD 2: one process per instance, with its
// configuration, control socket, pid file and log in the run directory.
type birdEngine struct{}

func (birdEngine) files(s Speaker, in *instance) []genFile {
	return []genFile{{"bird.conf", []byte(BirdConfig(s, in.path("bird.log")))}}
}

func (birdEngine) check(ctx context.Context, m *Manager, in *instance) error {
	bird, err := program("bird")
	if err != nil {
		return err
	}
	if _, err := command(ctx, bird, "-p", "-c", in.path("bird.conf")); err != nil {
		return fmt.Errorf("bird -p: %w", err)
	}
	return nil
}

func (birdEngine) start(ctx context.Context, m *Manager, in *instance) error {
	bird, err := program("bird")
	if err != nil {
		return err
	}
	if err := spawn(ctx, in, "bird.out", bird, "-c", in.path("bird.conf"), "-s", in.path("bird.ctl"), "-P", in.path("bird.pid")); err != nil {
		return err
	}
	return waitReady(ctx, in, func() error {
		if _, ok := m.running(in); !ok {
			return fmt.Errorf("no bird process")
		}
		_, err := birdc(ctx, in, "show", "status")
		return err
	})
}

func (birdEngine) reload(ctx context.Context, m *Manager, in *instance) error {
	out, err := birdc(ctx, in, "configure")
	if err != nil {
		return fmt.Errorf("birdc configure: %w", err)
	}
	if !bytes.Contains(out, []byte("Reconfigured")) && !bytes.Contains(out, []byte("Reconfiguration in progress")) {
		return fmt.Errorf("birdc configure: %s", bytes.TrimSpace(out))
	}
	return nil
}

func (birdEngine) pidFiles(in *instance) []string { return []string{in.path("bird.pid")} }

// shutdown: birdc down; BIRD withdraws what it installed and exits.
func (birdEngine) shutdown(ctx context.Context, m *Manager, in *instance) error {
	_, err := birdc(ctx, in, "down")
	return err
}

func (birdEngine) sessions(ctx context.Context, m *Manager, in *instance) ([]Session, error) {
	b, err := birdc(ctx, in, "show", "protocols")
	if err != nil {
		return nil, err
	}
	ss := parseProtocols(b)
	for i := range ss {
		s := &ss[i]
		if b, err := birdc(ctx, in, "show", "route", "protocol", s.Name); err == nil {
			s.Learned = parseRoutes(b)
		}
		if b, err := birdc(ctx, in, "show", "route", "filtered", "protocol", s.Name); err == nil {
			s.Refused = parseRoutes(b)
		}
	}
	return ss, nil
}

func (birdEngine) routeProto() string { return "bird" }

func (birdEngine) user() string { return "" }

// birdc sends one command to the instance's control socket.
func birdc(ctx context.Context, in *instance, args ...string) ([]byte, error) {
	prog, err := program("birdc")
	if err != nil {
		return nil, err
	}
	return command(ctx, append([]string{prog, "-s", in.path("bird.ctl")}, args...)...)
}
