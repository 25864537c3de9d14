package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/spf13/cobra"
)

// storeFlags select and open the metadata store.
type storeFlags struct {
	dataDir       string
	storeURL      string
	secretKeyFile string
}

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", envOr("CDCD_DATA_DIR", "./cdcd-data"), "directory for the embedded metadata store and the secret key (env CDCD_DATA_DIR)")
	cmd.Flags().StringVar(&f.storeURL, "store-url", os.Getenv("CDCD_STORE_URL"), "Postgres URL of a shared metadata store instead of the embedded SQLite one (env CDCD_STORE_URL)")
	cmd.Flags().StringVar(&f.secretKeyFile, "secret-key-file", os.Getenv("CDCD_SECRET_KEY_FILE"), "file with the base64 key that encrypts secrets at rest (default <data-dir>/secret.key, created if missing; or env CDCD_SECRET_KEY)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// keyFile is the path of the secret key file ("" when the key comes from
// CDCD_SECRET_KEY).
func (f *storeFlags) keyFile() string {
	if os.Getenv("CDCD_SECRET_KEY") != "" {
		return ""
	}
	if f.secretKeyFile != "" {
		return f.secretKeyFile
	}
	return filepath.Join(f.dataDir, "secret.key")
}

// cipher loads (or, on a first start, creates) the key that seals secrets at rest.
func (f *storeFlags) cipher(log *slog.Logger) (*secrets.Cipher, error) {
	path := f.keyFile()
	if path == "" {
		key, err := secrets.ParseKey(os.Getenv("CDCD_SECRET_KEY"))
		if err != nil {
			return nil, fmt.Errorf("CDCD_SECRET_KEY: %w", err)
		}
		return secrets.New(key)
	}
	key, created, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("created a new secret key; back it up: stored connection secrets cannot be read without it", "path", path)
	}
	return secrets.New(key)
}

func (f *storeFlags) openWith(ctx context.Context, c *secrets.Cipher) (store.Store, error) {
	if f.storeURL != "" {
		return store.OpenPostgres(ctx, f.storeURL, c)
	}
	return store.OpenSQLite(ctx, filepath.Join(f.dataDir, "cdcd.db"), c)
}

// mustExist refuses to go on when the embedded store is not there: a command
// that acts on the server's store (tokens), run from another directory,
// would otherwise make a new, empty store and key there and act on those.
func (f *storeFlags) mustExist() error {
	if f.storeURL != "" {
		return nil
	}
	path := filepath.Join(f.dataDir, "cdcd.db")
	if _, err := os.Stat(path); err != nil {
		abs, _ := filepath.Abs(path)
		return &exitError{2, fmt.Errorf("no metadata store at %s: run this where `cdcd serve` keeps its data, or give the server's --data-dir (or --store-url)", abs)}
	}
	return nil
}

func (f *storeFlags) open(ctx context.Context, log *slog.Logger) (store.Store, error) {
	c, err := f.cipher(log)
	if err != nil {
		return nil, err
	}
	st, err := f.openWith(ctx, c)
	if err != nil {
		return nil, err
	}
	next, err := finishRotation(ctx, log, st, f.keyFile(), c)
	switch {
	case err != nil:
		st.Close()
		return nil, err
	case next == nil:
		return st, nil
	}
	st.Close()
	return f.openWith(ctx, next)
}

// secrets is what references in API documents may resolve to under `cdcd
// serve`: the operator's allow-list, never the server's own key, store or
// settings.
func (f *storeFlags) secrets(sf serveFlags) config.Secrets {
	s := config.Secrets{EnvPrefixes: sf.secretEnvPrefix,
		DenyEnv:   []string{"CDCD_SECRET_KEY", "CDCD_SECRET_KEY_FILE", "CDCD_STORE_URL", "CDCD_TOKEN", "CDCD_TLS_KEY"},
		DenyFiles: []string{f.dataDir}}
	for _, d := range sf.secretsDirs {
		if abs, err := filepath.Abs(d); err == nil {
			s.Dirs = append(s.Dirs, abs)
		}
	}
	if abs, err := filepath.Abs(f.dataDir); err == nil {
		s.DenyFiles = append(s.DenyFiles, abs)
	}
	if kf := f.keyFile(); kf != "" {
		if abs, err := filepath.Abs(kf); err == nil {
			s.DenyFiles = append(s.DenyFiles, abs, abs+".new")
		}
	}
	if sf.http.TLSKey != "" {
		if abs, err := filepath.Abs(sf.http.TLSKey); err == nil {
			s.DenyFiles = append(s.DenyFiles, abs)
		}
	}
	return s
}

// withStore runs f with a logger, a context cancelled by SIGINT/SIGTERM and the
// opened metadata store, closing the store afterwards.
func withStore(cmd *cobra.Command, lf *logFlags, sf *storeFlags, f func(ctx context.Context, log *slog.Logger, st store.Store) error) error {
	log, err := lf.logger(os.Stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := sf.open(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(ctx, log, st)
}

type logFlags struct {
	format string
	level  string
}

func (f *logFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.format, "log-format", envOr("CDCD_LOG_FORMAT", "text"), "log format: text or json (env CDCD_LOG_FORMAT)")
	cmd.PersistentFlags().StringVar(&f.level, "log-level", envOr("CDCD_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env CDCD_LOG_LEVEL)")
}

// logger returns the process's logger: every line goes through
// redact.Handler, so no password or over-long value reaches the log.
func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.level)); err != nil {
		return nil, &exitError{2, fmt.Errorf("--log-level: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(f.format) {
	case "text":
		return slog.New(redact.NewHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(redact.NewHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, &exitError{2, fmt.Errorf("--log-format must be text or json, got %q", f.format)}
}

func newRoot() *cobra.Command {
	var lf logFlags
	root := &cobra.Command{
		Use:           "cdcd",
		Short:         "Change-data capture from Postgres and MySQL into warehouses",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	lf.register(root)
	root.AddCommand(
		newServe(&lf), newRun(&lf), newConfig(), newPipelines(), newConnections(), newTransforms(), newTokens(&lf), newSecrets(&lf), newAudit(), newAlerts(),
		&cobra.Command{Use: "version", Short: "Print the version", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "cdcd", version)
			return nil
		}},
	)
	return root
}
