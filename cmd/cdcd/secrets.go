package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/spf13/cobra"
)

// newSecrets is `cdcd secrets`: the key that seals what the store keeps.
func newSecrets(lf *logFlags) *cobra.Command {
	var sf storeFlags
	var newKeyFile string
	cmd := &cobra.Command{Use: "secrets", Short: "Manage the key that encrypts stored secrets"}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Encrypt every stored secret under a new key, in one transaction (stop every cdcd using the store first)",
		Long: `Generates a new key and seals every stored secret (connection and pipeline
configs, held changes) again under it, in one transaction of the metadata store.
With a key file, the new key replaces it (the file is rewritten only after the
transaction commits; a rotation interrupted in between is finished, or undone,
at the next start). With CDCD_SECRET_KEY, --new-key-file names where to write the
new key; set CDCD_SECRET_KEY to it before starting cdcd again.

Stop every cdcd process that uses the store first: a running one holds the old
key and can no longer read what it stored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, lf, &sf, func(ctx context.Context, log *slog.Logger, st store.Store) error {
				return rotateKey(ctx, cmd, st, sf.keyFile(), newKeyFile)
			})
		},
	}
	sf.register(rotate)
	rotate.Flags().StringVar(&newKeyFile, "new-key-file", "", "where to write the new key when the current one comes from CDCD_SECRET_KEY")
	cmd.AddCommand(rotate)
	return cmd
}

func rotateKey(ctx context.Context, cmd *cobra.Command, st store.Store, keyFile, newKeyFile string) error {
	key := secrets.NewKey()
	next, err := secrets.New(key)
	if err != nil {
		return err
	}
	write := newKeyFile
	switch {
	case keyFile == "" && newKeyFile == "":
		return &exitError{2, errors.New("the key comes from CDCD_SECRET_KEY: give --new-key-file PATH to write the new key to")}
	case keyFile != "" && newKeyFile != "":
		return &exitError{2, errors.New("--new-key-file is for a key given in CDCD_SECRET_KEY; the key file is rotated in place")}
	case keyFile != "":
		write = pendingKey(keyFile)
	}
	if err := secrets.WriteKeyFile(write, key); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: an earlier rotation did not finish; start cdcd once (it finishes or undoes it) and rotate again", write)
		}
		return err
	}
	n, err := st.Rekey(ctx, next)
	if err != nil {
		_ = os.Remove(write)
		return fmt.Errorf("rotate the secret key (nothing changed): %w", err)
	}
	if keyFile != "" {
		if err := replaceKeyFile(keyFile); err != nil {
			return fmt.Errorf("the secrets are sealed under the new key in %s, but it could not replace %s (the next start retries): %w", write, keyFile, err)
		}
	}
	_ = st.RecordAudit(ctx, store.AuditEntry{TokenName: "cli", Action: "cdcd secrets rotate", Target: "key " + next.ID(), Status: 200, Remote: "local"})
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "sealed %d stored values under the new key %s\n", n, next.ID())
	if keyFile != "" {
		fmt.Fprintf(out, "the new key is in %s; back it up, and keep no copy of the old one if it leaked\n", keyFile)
	} else {
		fmt.Fprintf(out, "the new key is in %s: set CDCD_SECRET_KEY to its content before starting cdcd again\n", newKeyFile)
	}
	return nil
}

// pendingKey is where a rotation writes the new key before it commits.
func pendingKey(keyFile string) string { return keyFile + ".new" }

// replaceKeyFile moves the pending new key over the key file, durably.
func replaceKeyFile(keyFile string) error {
	if err := os.Rename(pendingKey(keyFile), keyFile); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(keyFile))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// finishRotation looks for a rotation interrupted between its commit and the
// replacement of the key file, and finishes it (the store is sealed under the
// pending key) or undoes it (it is not). It returns the cipher to open the
// store with, if it is no longer c.
func finishRotation(ctx context.Context, log *slog.Logger, st store.Store, keyFile string, c *secrets.Cipher) (*secrets.Cipher, error) {
	if keyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(pendingKey(keyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := secrets.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pendingKey(keyFile), err)
	}
	next, err := secrets.New(key)
	if err != nil {
		return nil, err
	}
	ids, err := st.KeyIDs(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case slices.Contains(ids, c.ID()) && !slices.Contains(ids, next.ID()):
		log.Warn("a key rotation did not commit: keeping the current key", "pending", pendingKey(keyFile))
		return nil, os.Remove(pendingKey(keyFile))
	case !slices.Contains(ids, c.ID()):
		log.Warn("finishing a key rotation that committed: the new key replaces the key file", "key_file", keyFile, "key", next.ID())
		if err := replaceKeyFile(keyFile); err != nil {
			return nil, err
		}
		return next, nil
	}
	return nil, fmt.Errorf("stored secrets are sealed under keys %s; the key file has %s and the pending rotation %s: restore the store or the key from a backup",
		strings.Join(ids, ", "), c.ID(), next.ID())
}
