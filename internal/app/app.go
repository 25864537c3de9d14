package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/internal/alerts"
	"github.com/cdcd-dev/cdcd/internal/series"
	"github.com/cdcd-dev/cdcd/notify"
	"go.yaml.in/yaml/v3"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/registry"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/prometheus/client_golang/prometheus"
)

// App is the control plane's view of cdcd.
type App struct {
	Store      store.Store
	Registry   *registry.Registry
	Supervisor *pipeline.Supervisor
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Secrets is what ${…} references in stored documents may resolve to: the
	// operator's allow-list under `cdcd serve`, everything under `cdcd run -f`.
	// The zero value resolves nothing.
	Secrets config.Secrets
	// Hub is the pipelines' event log.
	Hub *EventHub
	// Alerts evaluates the alert rules (nil: none).
	Alerts *alerts.Engine
	// Series keeps the pipelines' recent history for charts (nil: none).
	Series *series.Recorder
}

func (a *App) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// ConnectionSource returns the connections a pipeline may name, fresh for each
// build so that a changed connection applies at the next restart.
type ConnectionSource func(ctx context.Context) (map[string]config.Connection, error)

// StoredConnections reads connections from the metadata store.
func (a *App) StoredConnections(ctx context.Context) (map[string]config.Connection, error) {
	list, err := a.Store.ListConnections(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]config.Connection, len(list))
	for _, c := range list {
		cc, err := config.ParseConnection(c.Config)
		if err != nil {
			return nil, fmt.Errorf("stored connection %q: %w", c.Name, err)
		}
		out[c.Name] = cc
	}
	return out, nil
}

// Spec returns the supervisor spec of p. Each attempt re-reads the connections,
// resolves secrets, acquires a new lease epoch and builds fresh components.
//
// The values its ${…} references resolved to are hidden from every error of
// the pipeline (what the supervisor logs, stores and shows), whatever
// component or server quoted them.
func (a *App) Spec(p config.Pipeline, conns ConnectionSource) pipeline.Spec {
	var mu sync.Mutex
	var resolved []string // by the latest attempt
	return pipeline.Spec{Name: p.Name, Paused: p.Paused,
		Retry: pipeline.RetryPolicy{Backoff: time.Duration(p.Retry.Backoff), MaxBackoff: time.Duration(p.Retry.MaxBackoff), MaxAttempts: p.Retry.MaxAttempts},
		ResyncTables: func(ctx context.Context, tables []schema.TableID) error {
			return a.resyncLost(ctx, p.Name, tables)
		},
		Build: func(ctx context.Context) (pipeline.RunnerConfig, error) {
			var seen []string
			rc, err := a.build(ctx, p, conns, a.Secrets.Recording(&seen))
			mu.Lock()
			resolved = seen
			mu.Unlock()
			return rc, err
		},
		Scrub: func(err error) error {
			mu.Lock()
			defer mu.Unlock()
			if !slices.ContainsFunc(resolved, func(v string) bool { return strings.Contains(err.Error(), v) }) {
				return err
			}
			return scrubbedError{msg: scrub(err.Error(), resolved), err: err}
		}}
}

func (a *App) build(ctx context.Context, p config.Pipeline, conns ConnectionSource, sec config.Secrets) (pipeline.RunnerConfig, error) {
	cs, err := conns(ctx)
	if err != nil {
		return pipeline.RunnerConfig{}, err
	}
	r, err := config.Resolve(p, a.Registry, cs, sec)
	if err != nil {
		return pipeline.RunnerConfig{}, err // config.Problems: permanent
	}
	p = r.Pipeline
	log := a.log().With("pipeline", p.Name)

	sink, err := a.Registry.Sinks[r.SinkType].New(r.Sink, sinks.Deps{Pipeline: p.Name, Logger: log, Metrics: a.Registerer})
	if err != nil {
		return pipeline.RunnerConfig{}, component.Permanent(fmt.Errorf("sink config: %w", err))
	}
	var offs offsets.Store = a.Store
	if os, ok := sink.(sinks.OffsetStorer); ok {
		offs = os // the sink commits offsets in the same transaction as the data
	}
	epoch, err := offs.Acquire(ctx, p.Name)
	if err != nil {
		return pipeline.RunnerConfig{}, err
	}
	progressEpoch := epoch
	if offs != offsets.Store(a.Store) {
		// the metadata store fences snapshot progress with a lease of its own
		if progressEpoch, err = a.Store.Acquire(ctx, p.Name); err != nil {
			return pipeline.RunnerConfig{}, err
		}
	}
	reg, err := schema.NewRegistry(ctx, a.Store, p.Name)
	if err != nil {
		return pipeline.RunnerConfig{}, err
	}
	src, err := a.Registry.Sources[r.SourceType].New(r.Source, sources.Deps{
		Pipeline: p.Name, Logger: log, Metrics: a.Registerer, Schema: reg,
		Progress:   store.Bind(a.Store, p.Name, progressEpoch),
		Epoch:      uint64(progressEpoch),
		MaxChanges: p.Batch.MaxChanges, MaxBytes: int(p.Batch.MaxBytes), MaxWait: time.Duration(p.Batch.MaxWait),
	})
	if err != nil {
		return pipeline.RunnerConfig{}, component.Permanent(fmt.Errorf("source config: %w", err))
	}
	steps := make([]transforms.Step, 0, len(p.Transforms))
	for i, t := range p.Transforms {
		tr, err := a.Registry.Transforms[t.Type].New(r.Transforms[i], transforms.Deps{Logger: log, Pipeline: p.Name, Step: t.Name, Metrics: a.Registerer})
		if err != nil {
			return pipeline.RunnerConfig{}, component.Permanent(fmt.Errorf("transform %s: %w", t.Name, err))
		}
		steps = append(steps, transforms.Step{Name: t.Name, Tables: t.Tables, Transform: tr})
	}
	run := store.BindHolds(a.Store, p.Name, progressEpoch)
	var stats pipeline.StatsStore = store.BindStats(a.Store, p.Name, progressEpoch)
	if offs == offsets.Store(a.Store) {
		// the counts go in the offset commit's transaction
		both := store.BindOffsetsAndStats(a.Store, p.Name, epoch)
		offs, stats = both, both
	}
	return pipeline.RunnerConfig{
		Pipeline: p.Name, Source: src, Sink: sink, Chain: transforms.NewChain(steps...),
		Offsets: offs, Epoch: epoch,
		Evolution: p.SchemaChanges.Evolution(), Holds: run,
		SkipTransformErrors: p.OnTransformError == "skip", Skips: run,
		Stats:      stats,
		MaxChanges: p.Batch.MaxChanges, MaxBytes: int(p.Batch.MaxBytes), MaxWait: time.Duration(p.Batch.MaxWait), MinWait: time.Duration(p.Batch.MinWait),
		DrainTimeout: time.Duration(p.DrainTimeout), Logger: a.log(),
	}, nil
}

// Start loads every stored pipeline into the supervisor.
func (a *App) Start(ctx context.Context) error {
	list, err := a.Store.ListPipelines(ctx)
	if err != nil {
		return err
	}
	for _, sp := range list {
		p, err := config.ParsePipeline(sp.Spec)
		if err != nil {
			a.log().Error("stored pipeline does not parse; leaving it stopped", "pipeline", sp.Name, "error", err)
			_ = a.Store.SavePipelineState(ctx, sp.Name, string(pipeline.StateFailed), "stored spec does not parse: "+err.Error())
			continue
		}
		p.Paused = sp.Paused
		if err := a.Supervisor.Upsert(ctx, a.Spec(p, a.StoredConnections)); err != nil {
			return err
		}
	}
	return nil
}

// Errors the control operations return, for the API to map to status codes.
var (
	ErrNotFound = store.ErrNotFound
	ErrConflict = store.ErrConflict
)

// ApplyConnection validates and stores a connection. created reports whether it
// is new. Values sent back as shown (redacted) keep the stored ones.
func (a *App) ApplyConnection(ctx context.Context, c config.Connection) (created bool, err error) {
	if created, err = a.checkConnection(ctx, &c); err != nil {
		return false, err
	}
	raw, err := config.Marshal(c)
	if err != nil {
		return false, err
	}
	return created, a.Store.PutConnection(ctx, store.Connection{Name: c.Name, Type: c.Type, Config: raw})
}

// CheckConnection validates c as ApplyConnection would, storing nothing.
func (a *App) CheckConnection(ctx context.Context, c config.Connection) error {
	_, err := a.checkConnection(ctx, &c)
	return err
}

// checkConnection restores in c the secrets it was sent back with redacted
// and validates it; isNew reports whether no connection of its name is stored.
func (a *App) checkConnection(ctx context.Context, c *config.Connection) (isNew bool, err error) {
	old, err := a.Store.GetConnection(ctx, c.Name)
	var stored config.Connection
	switch {
	case errors.Is(err, store.ErrNotFound):
		isNew = true
	case err != nil:
		return false, err
	default:
		if stored, err = config.ParseConnection(old.Config); err != nil {
			return false, fmt.Errorf("stored connection %q: %w", c.Name, err)
		}
	}
	if err := config.Unredact(&c.Config, &stored.Config, "connection.config"); err != nil {
		return false, err
	}
	return isNew, config.ValidateConnection(*c, a.Registry, a.Secrets)
}

// ConnectionView is a connection as shown by the API, secrets redacted.
type ConnectionView struct {
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Config    json.RawMessage `json:"config"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func connectionView(c store.Connection) (ConnectionView, error) {
	cc, err := config.ParseConnection(c.Config)
	if err != nil {
		return ConnectionView{}, err
	}
	red, err := config.ToJSON(&cc.Config)
	if err != nil {
		return ConnectionView{}, err
	}
	if red == nil {
		red = map[string]any{}
	}
	b, err := json.Marshal(red)
	if err != nil {
		return ConnectionView{}, err
	}
	return ConnectionView{Name: c.Name, Type: c.Type, Config: b, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}, nil
}

// Connections lists connections.
func (a *App) Connections(ctx context.Context) ([]ConnectionView, error) {
	list, err := a.Store.ListConnections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ConnectionView, 0, len(list))
	for _, c := range list {
		v, err := connectionView(c)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Connection returns one connection.
func (a *App) Connection(ctx context.Context, name string) (ConnectionView, error) {
	c, err := a.Store.GetConnection(ctx, name)
	if err != nil {
		return ConnectionView{}, err
	}
	return connectionView(c)
}

// DeleteConnection deletes an unused connection.
func (a *App) DeleteConnection(ctx context.Context, name string) error {
	if rules, err := a.alertChannelInUse(ctx, name); err != nil {
		return err
	} else if len(rules) > 0 {
		return fmt.Errorf("connection %q is the alert channel of rules %s: remove it from them first: %w", name, strings.Join(rules, ", "), store.ErrConflict)
	}
	return a.Store.DeleteConnection(ctx, name)
}

// CheckResult is the outcome of testing a connection.
type CheckResult struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	// Warnings do not stop a pipeline; each says what to do.
	Warnings []string `json:"warnings,omitempty"`
}

// TestConnection builds the connection's component and runs its live check: it
// connects and reports what is wrong in words a user can act on. Neither a
// resolved secret nor a password shows in its answer.
//
// role (source, destination, alert_channel; empty: the role the config fits,
// a source's first) says which role of a type that has several to test: a
// postgres connection that leaves its tables to its pipelines is tested as a
// source on its server alone (sources.ServerChecker).
func (a *App) TestConnection(ctx context.Context, name, role string) (CheckResult, error) {
	sc, err := a.Store.GetConnection(ctx, name)
	if err != nil {
		return CheckResult{}, err
	}
	c, err := config.ParseConnection(sc.Config)
	if err != nil {
		return CheckResult{}, err
	}
	var seen []string
	res := a.testConnection(ctx, c, a.Secrets.Recording(&seen), role)
	for i, p := range res.Problems {
		res.Problems[i] = scrub(p, seen)
	}
	for i, w := range res.Warnings {
		res.Warnings[i] = scrub(w, seen)
	}
	return res, nil
}

func (a *App) testConnection(ctx context.Context, c config.Connection, sec config.Secrets, role string) CheckResult {
	node, err := sec.Expand(&c.Config, "config")
	if err != nil {
		return failed(err)
	}
	_, isSource := a.Registry.Sources[c.Type]
	_, isSink := a.Registry.Sinks[c.Type]
	_, isNotifier := a.Registry.Notifiers[c.Type]
	switch {
	case role == "" || (role == "source" && isSource) || (role == "destination" && isSink) || (role == "alert_channel" && isNotifier):
	default:
		return failed(fmt.Errorf("a %s connection cannot be used as %s", c.Type, strings.ReplaceAll(role, "_", " ")))
	}
	var check func(context.Context) error
	var warner sources.Warner
	if role == "source" && stringList(node, "tables") == nil {
		// the pipelines name the tables: check the server alone
		f := a.Registry.Sources[c.Type]
		withTables := withPlaceholderTables(node)
		src, err := f.New(withTables, sources.Deps{Pipeline: "connection_test", Logger: a.log()})
		if err != nil {
			return failed(err)
		}
		sc, ok := src.(sources.ServerChecker)
		if !ok {
			return failed(fmt.Errorf("a %s source is tested with its tables: add tables to the connection, or test the pipeline", c.Type))
		}
		check = sc.CheckServer
		warner, _ = src.(sources.Warner)
		return runCheck(ctx, check, warner)
	}
	// a type that is a source and a destination (postgres) is tested in the
	// role its config fits: a source's names tables, a destination's does not
	var misfit error
	if f, ok := a.Registry.Sources[c.Type]; ok && (role == "" || role == "source") {
		src, err := f.New(node, sources.Deps{Pipeline: "connection_test", Logger: a.log()})
		if err == nil {
			if ch, ok := src.(sources.Checker); ok {
				check = ch.Check
			}
			warner, _ = src.(sources.Warner)
		} else {
			misfit = err
		}
	}
	if f, ok := a.Registry.Notifiers[c.Type]; ok && check == nil && (role == "" || role == "alert_channel") {
		n, err := f.New(node, notify.Deps{Logger: a.log()})
		if err != nil {
			return failed(err)
		}
		check = func(ctx context.Context) error {
			now := time.Now().UTC()
			return n.Notify(ctx, notify.Notification{Status: notify.Test, Rule: "test", Severity: "info", ID: "test/" + c.Name, StartedAt: now,
				Summary: "cdcd test notification to " + c.Name, Detail: "Sent by `cdcd connections test " + c.Name + "`: alerts will arrive here."})
		}
	}
	if f, ok := a.Registry.Sinks[c.Type]; ok && check == nil && (role == "" || role == "destination") {
		snk, err := f.New(node, sinks.Deps{Pipeline: "connection_test", Logger: a.log()})
		if err != nil {
			if misfit != nil {
				return failed(fmt.Errorf("as a source: %w; as a destination: %w", misfit, err))
			}
			return failed(err)
		}
		misfit = nil
		if ch, ok := snk.(sinks.Checker); ok {
			check = ch.Check
		} else {
			check = func(ctx context.Context) error {
				if err := snk.Open(ctx); err != nil {
					return err
				}
				return snk.Close(ctx)
			}
		}
	}
	if misfit != nil {
		return failed(misfit)
	}
	return runCheck(ctx, check, warner)
}

// runCheck runs a live check, bounded, with the warnings it leaves.
func runCheck(ctx context.Context, check func(context.Context) error, warner sources.Warner) CheckResult {
	if check == nil {
		return CheckResult{OK: true}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res := CheckResult{OK: true}
	if err := check(ctx); err != nil {
		res = failed(err)
	}
	if warner != nil {
		res.Warnings = warner.Warnings()
	}
	return res
}

// scrub hides in s every resolved secret value (whatever form a driver quoted
// it in is beyond reach, but the value itself is not) and every password
// redact.Text finds.
func scrub(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, redact.Placeholder)
	}
	return redact.Text(s)
}

func failed(err error) CheckResult {
	var many interface{ Unwrap() []error }
	if errors.As(err, &many) {
		var out []string
		for _, e := range many.Unwrap() {
			out = append(out, e.Error())
		}
		return CheckResult{Problems: out}
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		var out []string
		for _, p := range ps {
			out = append(out, p.Error())
		}
		return CheckResult{Problems: out}
	}
	return CheckResult{Problems: []string{err.Error()}}
}

// maxStoredError bounds the last error stored with a pipeline's state.
const maxStoredError = 8 << 10

// States adapts the metadata store to the supervisor's StateStore. Pipelines that
// are not stored (those of `cdcd run -f`) are skipped.
func States(s store.Store) pipeline.StateStore { return stateStore{s} }

type stateStore struct{ s store.Store }

func (a stateStore) SavePipelineState(ctx context.Context, name string, st pipeline.State, lastErr string) error {
	err := a.s.SavePipelineState(ctx, name, string(st), redact.Cut(redact.Text(lastErr), maxStoredError))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// withPlaceholderTables returns a copy of a source config with a tables list
// that only satisfies its validation: CheckServer does not read it.
func withPlaceholderTables(n *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode}
	if n != nil && n.Kind == yaml.MappingNode {
		out.Content = append(out.Content, n.Content...)
	}
	out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "tables"},
		&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "cdcd.connection_test"}}})
	return out
}
