package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/internal/series"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/api"
	"github.com/cdcd-dev/cdcd/internal/app"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/web"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// serveFlags are the settings of `cdcd serve`.
type serveFlags struct {
	listen          string
	metricsListen   string
	allowedHosts    []string
	trustedOrigins  []string
	secretsDirs     []string
	secretEnvPrefix []string
	pprof           bool
	http            api.ServerOptions
}

func newServe(lf *logFlags) *cobra.Command {
	var sf storeFlags
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API, web UI and every stored pipeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.http.Validate(); err != nil {
				return &exitError{2, err}
			}
			return withStore(cmd, lf, &sf, func(ctx context.Context, log *slog.Logger, st store.Store) error {
				return serve(ctx, log, st, f, sf.secrets(f))
			})
		},
	}
	sf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", envOr("CDCD_LISTEN", "127.0.0.1:8080"), "address of the API and web UI (env CDCD_LISTEN); "+
		"an address other than loopback needs an API token to exist first")
	fl.StringVar(&f.metricsListen, "metrics-listen", os.Getenv("CDCD_METRICS_LISTEN"), "also serve /metrics, without a token, on this loopback address, for a Prometheus on this machine (env CDCD_METRICS_LISTEN)")
	fl.StringSliceVar(&f.allowedHosts, "allowed-hosts", envList("CDCD_ALLOWED_HOSTS"), "host names the API answers for besides localhost, IP literals and the --listen host, comma-separated; * for any (env CDCD_ALLOWED_HOSTS)")
	fl.StringSliceVar(&f.trustedOrigins, "trusted-origins", envList("CDCD_TRUSTED_ORIGINS"), "origins (https://host[:port]) whose pages may send state-changing requests, besides the server's own (env CDCD_TRUSTED_ORIGINS)")
	fl.StringSliceVar(&f.secretsDirs, "secrets-dir", envList("CDCD_SECRETS_DIR"), "directories whose files ${file:/path} references in API documents may name; none by default (env CDCD_SECRETS_DIR)")
	fl.StringSliceVar(&f.secretEnvPrefix, "secret-env-prefix", envListOr("CDCD_SECRET_ENV_PREFIX", "CDCD_SECRET_"), "prefixes of the environment variables ${NAME} references in API documents may name (env CDCD_SECRET_ENV_PREFIX)")
	fl.BoolVar(&f.pprof, "pprof", os.Getenv("CDCD_PPROF") == "1", "serve Go's runtime profiles at /debug/pprof/ to admin tokens (env CDCD_PPROF=1)")
	fl.StringVar(&f.http.TLSCert, "tls-cert", os.Getenv("CDCD_TLS_CERT"), "PEM certificate (chain) file: serve HTTPS (env CDCD_TLS_CERT)")
	fl.StringVar(&f.http.TLSKey, "tls-key", os.Getenv("CDCD_TLS_KEY"), "PEM private key file of --tls-cert (env CDCD_TLS_KEY)")
	fl.IntVar(&f.http.MaxConnections, "max-connections", api.DefaultMaxConnections, "most open HTTP connections; more are answered 503")
	fl.DurationVar(&f.http.IdleTimeout, "idle-timeout", api.DefaultIdleTimeout, "close a keep-alive connection idle this long")
	return cmd
}

func envList(k string) []string { return envListOr(k, "") }

func envListOr(k, def string) []string {
	v := envOr(k, def)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// engine is what serve and run share: metrics, supervisor and app.
func engine(log *slog.Logger, st store.Store, sec config.Secrets) (*app.App, *prometheus.Registry) {
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hub := app.NewEventHub(store.Events(st), log)
	sup := pipeline.NewSupervisor(pipeline.SupervisorConfig{Logger: log, Metrics: pipeline.NewMetrics(promReg), States: app.States(st), Events: hub})
	return &app.App{Store: st, Registry: components(), Supervisor: sup, Logger: log, Registerer: promReg, Secrets: sec, Hub: hub}, promReg
}

// checkOpen refuses to serve an open API (no token yet) on an address other
// than loopback: whoever reached it first would own it.
func checkOpen(ctx context.Context, st store.Store, listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return &exitError{2, fmt.Errorf("--listen %q: %w", listen, err)}
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	has, err := st.HasTokens(ctx)
	if err != nil {
		return err
	}
	if has {
		return nil
	}
	return &exitError{2, fmt.Errorf("refusing to serve on %s with no API token: anyone who reached it could take it over. "+
		"Create an admin token first, on this machine with the same --data-dir or --store-url: `cdcd tokens create admin --role admin` "+
		"(it prints the token once), or listen on 127.0.0.1", listen)}
}

func serve(ctx context.Context, log *slog.Logger, st store.Store, f serveFlags, sec config.Secrets) error {
	if err := checkOpen(ctx, st, f.listen); err != nil {
		return err
	}
	a, promReg := engine(log, st, sec)
	mln, err := metricsListener(f.metricsListen)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		if mln != nil {
			mln.Close()
		}
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	supRunning := make(chan struct{})
	hosts := f.allowedHosts
	if h, _, err := net.SplitHostPort(f.listen); err == nil && h != "" && net.ParseIP(h) == nil {
		hosts = append(hosts, h) // the name it was told to listen on
	}
	handler, err := api.New(api.Config{
		Connections: a, Pipelines: a, Documents: a, SchemaChanges: a, History: a, Catalogs: a, Alerts: a, Previewer: a, Tokens: st, Audit: st, Metrics: promReg, Registerer: promReg, Logger: log, UI: web.FS(), Types: a.Registry, Planner: a, AllEvents: a, Resyncer: a, Verifier: a, Version: version, Pprof: f.pprof,
		AllowedHosts: hosts, TrustedOrigins: f.trustedOrigins,
		Ready: func(ctx context.Context) error {
			select {
			case <-supRunning:
			default:
				return errors.New("supervisor not running")
			}
			_, err := st.HasTokens(ctx)
			return err
		},
	})
	if err != nil {
		ln.Close()
		return &exitError{2, err}
	}
	srv, ln, err := api.HTTPServer(handler, ln, f.http, log)
	if err != nil {
		ln.Close()
		return &exitError{2, err}
	}

	// The supervisor stops first (pipelines drain), the HTTP server last.
	supCtx, stopSup := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSup()
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	g.Go(func() error { return a.Supervisor.Run(supCtx) })
	close(supRunning)
	a.Alerts = a.NewAlerts(a.StoredConnections)
	rules, err := a.AlertRules(ctx)
	if err != nil {
		stopSup()
		_ = g.Wait()
		ln.Close()
		return fmt.Errorf("load the alert rules: %w", err)
	}
	a.Alerts.SetRules(rules)
	g.Go(func() error { return a.Alerts.Run(supCtx) })
	a.Series = series.New(series.Config{Statuses: a.Supervisor.List, Store: store.Series(st), Logger: log})
	g.Go(func() error { return a.Series.Run(supCtx) })
	g.Go(func() error { return a.VerifySchedule(supCtx) })
	if err := a.Start(ctx); err != nil {
		stopSup()
		_ = g.Wait()
		ln.Close()
		return fmt.Errorf("start pipelines: %w", err)
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	metricsCtx, stopMetrics := context.WithCancel(gctx)
	defer stopMetrics()
	if mln != nil {
		g.Go(func() error { return serveMetrics(metricsCtx, mln, promReg, log) })
	} else {
		stopMetrics()
	}
	scheme := "http"
	if f.http.TLSCert != "" {
		scheme = "https"
	}
	log.Info("cdcd serving", "version", version, "listen", ln.Addr().String(), "ui", scheme+"://"+ln.Addr().String()+"/", "api", scheme+"://"+ln.Addr().String()+"/api/v1")
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
		}
		log.Info("stopping: draining pipelines")
		stopSup()
		stopMetrics()
		shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutCtx)
	})
	return g.Wait()
}

func newRun(lf *logFlags) *cobra.Command {
	var sf storeFlags
	var file, metricsAddr string
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run the pipelines of a config file in the foreground (no API); offsets persist in the metadata store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadValid(file)
			if err != nil {
				return err
			}
			if len(f.Pipelines) == 0 {
				return &exitError{2, fmt.Errorf("%s declares no pipelines", file)}
			}
			return withStore(cmd, lf, &sf, func(ctx context.Context, log *slog.Logger, st store.Store) error {
				return runFile(ctx, log, st, f, file, metricsAddr)
			})
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "config file (YAML or JSON)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-listen", os.Getenv("CDCD_METRICS_LISTEN"), "serve /metrics, without a token, on this loopback address (env CDCD_METRICS_LISTEN)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// runFile runs a file's pipelines until ctx ends, then reports how each stopped.
func runFile(ctx context.Context, log *slog.Logger, st store.Store, f config.File, file, metricsAddr string) error {
	a, promReg := engine(log, st, config.AllSecrets) // the operator's own file: every reference resolves
	mln, err := metricsListener(metricsAddr)
	if err != nil {
		return err
	}
	if mln != nil {
		mctx, stopMetrics := context.WithCancel(ctx)
		merr := make(chan error, 1)
		go func() { merr <- serveMetrics(mctx, mln, promReg, log) }()
		defer func() {
			stopMetrics()
			if err := <-merr; err != nil {
				log.Warn("metrics listener", "error", err)
			}
		}()
	}
	conns := map[string]config.Connection{}
	for _, c := range f.Connections {
		conns[c.Name] = c
	}
	fileConns := func(context.Context) (map[string]config.Connection, error) { return conns, nil }
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	supErr := make(chan error, 1)
	go func() { supErr <- a.Supervisor.Run(ctx) }()
	for _, p := range f.Pipelines {
		if err := a.Supervisor.Upsert(ctx, a.Spec(p, fileConns)); err != nil {
			cancel()
			<-supErr // the supervisor stops its pipelines before we return
			return err
		}
	}
	var alertsDone chan error
	if f.Alerts != nil {
		a.Alerts = a.NewAlerts(fileConns)
		a.Alerts.SetRules(*f.Alerts)
		alertsDone = make(chan error, 1)
		go func() { alertsDone <- a.Alerts.Run(ctx) }()
	}
	log.Info("running pipelines from file", "file", file, "pipelines", len(f.Pipelines))
	err = <-supErr
	if alertsDone != nil {
		if aerr := <-alertsDone; aerr != nil && err == nil {
			err = aerr
		}
	}
	return err // the supervisor logged how each pipeline stopped
}

func newConfig() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with config files"}
	var file string
	check := &cobra.Command{
		Use:   "check -f FILE",
		Short: "Validate a config file and list every problem with its path (no I/O)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadValid(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d connections, %d pipelines)\n", file, len(f.Connections), len(f.Pipelines))
			return nil
		},
	}
	check.Flags().StringVarP(&file, "file", "f", "", "config file (YAML or JSON)")
	_ = check.MarkFlagRequired("file")
	cmd.AddCommand(check)
	return cmd
}

// loadValid reads a config file and validates it against the registry (no I/O
// beyond reading the file and ${file:} secrets).
func loadValid(file string) (config.File, error) {
	f, err := config.LoadFile(file)
	if err != nil {
		return config.File{}, &exitError{2, err}
	}
	if err := config.Validate(f, components(), nil, config.AllSecrets); err != nil {
		return config.File{}, err
	}
	return f, nil
}
