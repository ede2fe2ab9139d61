package engine

import (
	"errors"
	"testing"
	"time"
)

func TestConfirmReachesTheWaiter(t *testing.T) {
	e := &Engine{RunDir: t.TempDir(), Netns: "tr-x"}
	if err := e.Confirm(); !errors.Is(err, ErrNothingToConfirm) {
		t.Fatalf("Confirm with no waiter: %v, want ErrNothingToConfirm", err)
	}
	w, err := e.WaitConfirm()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := e.WaitConfirm(); err == nil {
		t.Fatal("a second waiter for the same namespace was accepted")
	}
	other := &Engine{RunDir: e.RunDir, Netns: ""}
	if err := other.Confirm(); !errors.Is(err, ErrNothingToConfirm) {
		t.Fatalf("confirming the host namespace reached namespace tr-x's waiter: %v", err)
	}
	if err := e.Confirm(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Confirmed:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter never heard the confirmation")
	}
}

func TestWaiterReplacesADeadOnesSocket(t *testing.T) {
	e := &Engine{RunDir: t.TempDir()}
	w, err := e.WaitConfirm()
	if err != nil {
		t.Fatal(err)
	}
	w.ln.SetUnlinkOnClose(false) // a waiter killed before it could clean up
	w.Close()
	w2, err := e.WaitConfirm()
	if err != nil {
		t.Fatalf("a stale socket blocked the next waiter: %v", err)
	}
	w2.Close()
}
