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

func (f *storeFlags) open(ctx context.Context, log *slog.Logger) (store.Store, error) {
	var key []byte
	var err error
	switch {
	case os.Getenv("CDCD_SECRET_KEY") != "":
		key, err = secrets.ParseKey(os.Getenv("CDCD_SECRET_KEY"))
		if err != nil {
			return nil, fmt.Errorf("CDCD_SECRET_KEY: %w", err)
		}
	default:
		path := f.secretKeyFile
		if path == "" {
			path = filepath.Join(f.dataDir, "secret.key")
		}
		var created bool
		key, created, err = secrets.LoadOrCreateKeyFile(path)
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("created a new secret key; back it up: stored connection secrets cannot be read without it", "path", path)
		}
	}
	c, err := secrets.New(key)
	if err != nil {
		return nil, err
	}
	if f.storeURL != "" {
		return store.OpenPostgres(ctx, f.storeURL, c)
	}
	return store.OpenSQLite(ctx, filepath.Join(f.dataDir, "cdcd.db"), c)
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

func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.level)); err != nil {
		return nil, &exitError{2, fmt.Errorf("--log-level: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(f.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
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
		newServe(&lf), newRun(&lf), newConfig(), newPipelines(), newConnections(), newTransforms(), newTokens(&lf),
		&cobra.Command{Use: "version", Short: "Print the version", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "cdcd", version)
			return nil
		}},
	)
	return root
}
