package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tunroute/tunroute/internal/config"
	"github.com/tunroute/tunroute/internal/wgquick"
)

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Write a tunroute config equivalent to another tool's",
	}
	cmd.AddCommand(newImportWGQuickCmd())
	return cmd
}

func newImportWGQuickCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "wg-quick FILE -o CONFIG",
		Short: "Turn a wg-quick file (wg0.conf) into a tunroute config with the same device, peers and routing",
		Long: `Reads a wg-quick(8) file and writes CONFIG: a WireGuard device of the same name with
its addresses, port, fwmark and peers, and wg-quick's routing (Table = auto: the full tunnel
with its fwmark rule and suppress_prefixlength 0, and the guard against CVE-2019-14899), which
tunroute then owns, shows in plans and removes with down. The private key goes into
NAME.key beside CONFIG, readable by root only (and each peer's PresharedKey into
NAME-peerN.psk). What tunroute does not take over (PreUp/PostUp
scripts, DNS, MTU) is listed in CONFIG's comments and on standard error. Nothing else changes:
apply CONFIG when you have read it (and stopped wg-quick@NAME).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("give the config to write with -o CONFIG (the private key goes beside it)")
			}
			return importWGQuick(args[0], out, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the tunroute config to write (must not exist)")
	return cmd
}

func importWGQuick(file, out string, notes interface{ Write([]byte) (int, error) }) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	wq, err := wgquick.Parse(f, file)
	if err != nil {
		return err
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists; tunroute import does not overwrite a config", out)
	}
	keyFile := filepath.Join(filepath.Dir(out), wq.Name+".key")
	key := base64.StdEncoding.EncodeToString(wq.PrivateKey[:]) + "\n"
	// The secrets: the private key and each peer's preshared key, in
	// files beside the config, readable by root only.
	secrets := map[string]string{filepath.Base(keyFile): key}
	for i, p := range wq.Peers {
		if p.PresharedKey != nil {
			secrets[wq.PresharedKeyFile(i)] = base64.StdEncoding.EncodeToString(p.PresharedKey[:]) + "\n"
		}
	}
	for name, body := range secrets {
		path := filepath.Join(filepath.Dir(out), name)
		if old, err := os.ReadFile(path); err == nil {
			if strings.TrimSpace(string(old)) != strings.TrimSpace(body) {
				return fmt.Errorf("%s exists with another key; move it away first", path)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	yaml, ns := wq.YAML(wq.Name + ".key")
	// What is written must load: check it before anything is written.
	tmp, err := os.MkdirTemp("", "tunroute-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for name, body := range secrets {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "tunroute.yaml"), []byte(yaml), 0o600); err != nil {
		return err
	}
	if _, err := config.Load(filepath.Join(tmp, "tunroute.yaml"), config.Options{}); err != nil {
		return fmt.Errorf("the translated config does not load (please report it): %w", err)
	}
	for name, body := range secrets {
		if err := os.WriteFile(filepath.Join(filepath.Dir(out), name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(out, []byte(yaml), 0o600); err != nil {
		return err
	}
	for _, n := range ns {
		fmt.Fprintf(notes, "note: %s\n", n)
	}
	fmt.Fprintf(notes, "wrote %s and %s\n", out, keyFile)
	return nil
}
