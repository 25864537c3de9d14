package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
)

// State is a pipeline's life-cycle state (DESIGN.md §5).
type State string

// The states.
const (
	StateCreated      State = "created"
	StateSnapshotting State = "snapshotting"
	StateStreaming    State = "streaming"
	StatePaused       State = "paused"
	StateFailed       State = "failed"
	StateNeedsResync  State = "needs_resync"
	// StateRetrying: an attempt failed with a retryable error; the next one
	// is due at Status.NextRetry, or runs and has not committed yet.
	StateRetrying State = "retrying"
)

// States lists every State.
var States = []State{StateCreated, StateSnapshotting, StateStreaming, StatePaused, StateFailed, StateNeedsResync, StateRetrying}

// RetryPolicy is how a pipeline retries attempts that fail with a retryable
// error: a jittered exponential backoff from Backoff, capped at MaxBackoff,
// and, when MaxAttempts is set, failed after that many consecutive failures
// without a commit in between. Zero fields take the Supervisor's defaults.
type RetryPolicy struct {
	Backoff     time.Duration
	MaxBackoff  time.Duration
	MaxAttempts int // 0: retry for as long as it takes
}

// Spec is what the Supervisor needs to run a pipeline.
type Spec struct {
	Name string
	// Paused starts the pipeline paused.
	Paused bool
	// Build makes fresh components for one attempt: it opens nothing, but it
	// acquires the lease epoch from the offset store it puts in the config.
	Build func(ctx context.Context) (RunnerConfig, error)
	// Scrub, when set, rewrites every error of an attempt before the
	// supervisor classifies, logs, stores or shows it (the control plane hides
	// the secrets it resolved for the pipeline); it keeps the error's chain.
	Scrub func(error) error
	// Retry overrides the Supervisor's retry defaults.
	Retry RetryPolicy
	// ResyncTables, when set, records a resync request for tables of the
	// stopped pipeline (a ResyncTablesError); the next attempt carries it out.
	// Unset, such an error parks the pipeline as needs_resync.
	ResyncTables func(ctx context.Context, tables []schema.TableID) error
}

// StateStore persists pipeline states so the API shows them after a restart.
type StateStore interface {
	SavePipelineState(ctx context.Context, pipeline string, state State, lastError string) error
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	Logger  *slog.Logger
	Metrics *Metrics
	States  StateStore    // optional
	Events  EventRecorder // optional: the pipelines' event log
	// BackoffBase and BackoffMax bound the jittered exponential backoff between
	// attempts after retryable failures (defaults 1s and DefaultMaxBackoff).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxFailures consecutive retryable failures (without a commit in between)
	// park the pipeline as failed; 0 retries for as long as it takes. A
	// pipeline's Spec.Retry overrides these.
	MaxFailures int
}

// DefaultMaxBackoff caps the wait between attempts: an outage of any length
// costs at most this much after it ends.
const DefaultMaxBackoff = 5 * time.Minute

// Status is what the Supervisor reports about a pipeline.
type Status struct {
	Name      string    `json:"name"`
	State     State     `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	Attempts  int       `json:"failed_attempts"`
	NextRetry time.Time `json:"next_retry,omitzero"`
	Running   bool      `json:"running"`
	// Degraded says the pipeline runs but not all is well: Reasons says what
	// (tables held by the schema-change policy, an attempt failed and is
	// retried).
	Degraded bool     `json:"degraded"`
	Reasons  []string `json:"reasons,omitempty"`
	Progress Progress `json:"progress"`
}

type managed struct {
	name string
	done chan struct{} // closed when the pipeline's goroutine has exited
	kick chan struct{} // wakes a parked or backing-off loop

	mu        sync.Mutex
	spec      Spec
	paused    bool
	removed   bool
	restart   bool // stop the current run and start again (spec updated, resume)
	state     State
	lastError string
	// failed are the source tables the last error concerns
	failed   []schema.TableID
	attempts int
	// lostResyncs counts the resyncs requested for lost destination tables
	// since the last commit
	lostResyncs int
	nextRetry   time.Time
	runner      *Runner
	cancel      context.CancelFunc
	// last is the progress of the last run, shown while none runs (its counts;
	// no lag: a pipeline that does not run has none)
	last Progress
	// warned are the source warnings logged already: each once per pipeline
	warned map[string]bool
}

func (m *managed) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Supervisor owns one runner per pipeline. Start it with Run; control it with
// Upsert, Pause, Resume and Remove from any goroutine.
type Supervisor struct {
	cfg  SupervisorConfig
	log  *slog.Logger
	cmds chan func(ctx context.Context)
	done chan struct{}

	mu    sync.Mutex
	pipes map[string]*managed
	wg    sync.WaitGroup
}

// ErrNotRunning is returned by control methods when the Supervisor is not running.
var ErrNotRunning = errors.New("supervisor is not running")

// ErrUnknownPipeline is returned for a pipeline the Supervisor does not run.
var ErrUnknownPipeline = errors.New("unknown pipeline")

// NewSupervisor returns a Supervisor; call Run to start it.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	cfg.BackoffBase = cmp.Or(cfg.BackoffBase, time.Second)
	cfg.BackoffMax = cmp.Or(cfg.BackoffMax, DefaultMaxBackoff)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Supervisor{
		cfg: cfg, log: cfg.Logger.With("component", "supervisor"),
		cmds: make(chan func(context.Context)), done: make(chan struct{}),
		pipes: map[string]*managed{},
	}
}

// Run runs the supervisor until ctx is cancelled, then stops every pipeline
// gracefully (each drains within its drain timeout) and returns once all have
// exited.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.done)
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case cmd := <-s.cmds:
			cmd(ctx)
		}
	}
}

// do runs f on the Run goroutine, where the supervisor's ctx is known.
func (s *Supervisor) do(ctx context.Context, f func(runCtx context.Context) error) error {
	res := make(chan error, 1)
	select {
	case s.cmds <- func(runCtx context.Context) { res <- f(runCtx) }:
	case <-s.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-res
}

// Upsert starts a pipeline, or replaces the spec of a running one (its current run
// stops gracefully and a new one starts with the new spec).
func (s *Supervisor) Upsert(ctx context.Context, spec Spec) error {
	if spec.Name == "" || spec.Build == nil {
		return errors.New("spec needs a name and a build function")
	}
	return s.do(ctx, func(runCtx context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if m, ok := s.pipes[spec.Name]; ok {
			m.mu.Lock()
			m.spec, m.paused, m.restart = spec, spec.Paused, true
			m.state, m.lastError, m.attempts, m.failed = StateCreated, "", 0, nil
			if m.cancel != nil {
				m.cancel()
			}
			m.mu.Unlock()
			m.wake()
			s.event(runCtx, spec.Name, EventState, LevelInfo, "updated: restarting with the new spec")
			return nil
		}
		s.event(runCtx, spec.Name, EventState, LevelInfo, "loaded")
		m := &managed{name: spec.Name, spec: spec, paused: spec.Paused, state: StateCreated,
			done: make(chan struct{}), kick: make(chan struct{}, 1)}
		s.pipes[spec.Name] = m
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(m.done)
			s.loop(runCtx, m)
		}()
		return nil
	})
}

func (s *Supervisor) get(name string) (*managed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.pipes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownPipeline, name)
	}
	return m, nil
}

// Pause stops a pipeline gracefully and keeps it stopped until Resume.
func (s *Supervisor) Pause(name string) error {
	m, err := s.get(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.paused = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wake()
	return nil
}

// Resume starts a paused, failed or needs-resync pipeline again (clearing its
// failure count).
func (s *Supervisor) Resume(name string) error {
	m, err := s.get(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.paused, m.restart, m.attempts, m.nextRetry = false, true, 0, time.Time{}
	m.mu.Unlock()
	m.wake()
	return nil
}

// Restart stops a running pipeline gracefully and starts it again at once (a
// decision it must load at start, such as a resolved schema-change hold). A
// paused pipeline stays paused; a failed one is started again.
func (s *Supervisor) Restart(name string) error {
	m, err := s.get(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.restart, m.attempts, m.nextRetry = true, 0, time.Time{}
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wake()
	return nil
}

// Remove stops a pipeline gracefully and forgets it. It returns when the
// pipeline's goroutine has exited or ctx ends.
func (s *Supervisor) Remove(ctx context.Context, name string) error {
	m, err := s.get(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.removed = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wake()
	select {
	case <-m.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	delete(s.pipes, name)
	s.mu.Unlock()
	s.cfg.Metrics.forget(name)
	return nil
}

// Status returns the status of one pipeline.
func (s *Supervisor) Status(name string) (Status, error) {
	m, err := s.get(name)
	if err != nil {
		return Status{}, err
	}
	return s.status(m), nil
}

// List returns the status of every pipeline, by name.
func (s *Supervisor) List() []Status {
	s.mu.Lock()
	ms := make([]*managed, 0, len(s.pipes))
	for _, m := range s.pipes {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(ms))
	for _, m := range ms {
		out = append(out, s.status(m))
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (s *Supervisor) status(m *managed) Status {
	m.mu.Lock()
	st := Status{Name: m.name, State: m.state, LastError: m.lastError, Attempts: m.attempts, NextRetry: m.nextRetry, Progress: m.last}
	r, failed := m.runner, m.failed
	m.mu.Unlock()
	if r != nil && r.Streaming() {
		st.Running = true
		st.Progress = r.Progress()
		// a retrying pipeline says so until its attempt commits
		if st.State == StateCreated || st.State == StateSnapshotting || st.State == StateStreaming {
			st.State = StateStreaming
			if r.Snapshotting() {
				st.State = StateSnapshotting
			}
		}
	}
	if len(failed) > 0 && (st.Attempts > 0 || st.State == StateFailed || st.State == StateNeedsResync) {
		st.Progress.Tables = markFailed(st.Progress.Tables, failed, st.LastError)
	}
	if n := len(st.Progress.HeldTables); n > 0 && st.Running {
		st.Reasons = append(st.Reasons, fmt.Sprintf("%d table(s) held by the schema-change policy, their changes kept aside: %s (cdcd pipelines schema-changes %s)",
			n, strings.Join(st.Progress.HeldTables, ", "), m.name))
	}
	if st.Attempts > 0 && st.State != StateFailed && st.State != StateNeedsResync {
		msg := fmt.Sprintf("%d consecutive failed attempt(s), retrying", st.Attempts)
		if !st.NextRetry.IsZero() {
			msg += " at " + st.NextRetry.UTC().Format(time.RFC3339)
		} else if st.Running {
			msg += "; the current attempt runs and has not committed yet"
		}
		if st.LastError != "" {
			msg += ": " + st.LastError
		}
		st.Reasons = append(st.Reasons, msg)
	}
	st.Degraded = len(st.Reasons) > 0
	s.cfg.Metrics.setState(m.name, st.State)
	s.cfg.Metrics.degraded.WithLabelValues(m.name).Set(map[bool]float64{true: 1}[st.Degraded])
	return st
}

// markFailed returns tables (a copy) with those in failed in state
// TableFailed with the error msg, added when missing.
func markFailed(tables []TableProgress, failed []schema.TableID, msg string) []TableProgress {
	out := slices.Clone(tables)
	for _, id := range failed {
		name := id.String()
		i := slices.IndexFunc(out, func(t TableProgress) bool { return t.Table == name })
		if i < 0 {
			out = append(out, TableProgress{Table: name})
			i = len(out) - 1
		}
		out[i].State, out[i].Error = TableFailed, msg
	}
	slices.SortFunc(out, func(a, b TableProgress) int { return cmp.Compare(a.Table, b.Table) })
	return out
}

func (s *Supervisor) setState(ctx context.Context, m *managed, st State, lastErr string) {
	m.mu.Lock()
	prev := m.state
	m.state, m.lastError = st, lastErr
	if lastErr == "" {
		m.failed = nil
	}
	m.mu.Unlock()
	// entering a retry streak and leaving it have events of their own (the
	// failed attempt's, recovered's)
	if prev != st && st != StateRetrying && (prev != StateRetrying || st != StateCreated) {
		level, msg := LevelInfo, string(st)
		switch st {
		case StateFailed, StateNeedsResync:
			level, msg = LevelError, string(st)+": "+lastErr
		case StateCreated:
			msg = "starting"
		}
		s.event(ctx, m.name, EventState, level, "%s", msg)
	}
	s.cfg.Metrics.setState(m.name, st)
	if s.cfg.States != nil {
		if err := s.cfg.States.SavePipelineState(context.WithoutCancel(ctx), m.name, st, lastErr); err != nil {
			s.log.Warn("save pipeline state", "pipeline", m.name, "error", err)
		}
	}
}

// wait blocks until m is kicked, d passes (d > 0) or ctx ends; false means ctx ended.
func wait(ctx context.Context, m *managed, d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-m.kick:
	case <-timeout:
	}
	return true
}

// policy is spec's retry policy, its zero fields at the Supervisor's defaults.
func (s *Supervisor) policy(spec Spec) RetryPolicy {
	p := spec.Retry
	p.Backoff = cmp.Or(p.Backoff, s.cfg.BackoffBase)
	p.MaxBackoff = cmp.Or(p.MaxBackoff, s.cfg.BackoffMax)
	p.MaxAttempts = cmp.Or(p.MaxAttempts, s.cfg.MaxFailures)
	return p
}

func backoff(p RetryPolicy, attempt int) time.Duration {
	d := p.Backoff << min(attempt-1, 30)
	if d <= 0 || d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	return d/2 + rand.N(d/2+1) // jitter in [d/2, d]
}

func (s *Supervisor) loop(ctx context.Context, m *managed) {
	log := s.log.With("pipeline", m.name)
	outcome, level := "not running", slog.LevelInfo
	defer func() {
		if ctx.Err() == nil {
			return // removed
		}
		m.mu.Lock()
		state, last, lastErr := m.state, m.last, m.lastError
		m.mu.Unlock()
		st := string(state)
		if state == StateCreated {
			st = "stopped"
		}
		log.Log(context.WithoutCancel(ctx), level, "pipeline stopped", "state", st, "changes_written", last.ChangesWritten, "outcome", outcome,
			"committed", last.CommittedPos.String(), "last_error", lastErr)
	}()
	for ctx.Err() == nil {
		m.mu.Lock()
		removed, paused, restart, state := m.removed, m.paused, m.restart, m.state
		m.restart = false
		spec := m.spec
		m.mu.Unlock()
		switch {
		case removed:
			return
		case paused:
			if state != StatePaused {
				s.setState(ctx, m, StatePaused, "")
				log.Info("pipeline paused")
			}
			if !wait(ctx, m, 0) {
				return
			}
			continue
		case (state == StateFailed || state == StateNeedsResync) && !restart:
			if !wait(ctx, m, 0) {
				return
			}
			continue
		}
		if state == StatePaused || state == StateFailed || state == StateNeedsResync {
			s.setState(ctx, m, StateCreated, "")
		}
		if restart && state == StateRetrying {
			s.setState(ctx, m, StateCreated, "") // resumed or updated by hand: a new streak
		}

		runCtx, cancel := context.WithCancel(ctx)
		m.mu.Lock()
		m.cancel = cancel
		stopNow := m.removed || m.paused || m.restart
		m.mu.Unlock()
		if stopNow {
			cancel()
		}
		err := s.attempt(runCtx, m, spec)
		if err != nil && spec.Scrub != nil {
			err = spec.Scrub(err)
		}
		cancel()
		m.mu.Lock()
		m.cancel, m.runner = nil, nil
		m.mu.Unlock()
		if ctx.Err() != nil {
			switch {
			case err == nil:
				outcome = "drained"
			case errors.Is(err, ErrDrainTimeout):
				outcome, level = "the drain timed out (drain_timeout): the batches in flight are written again on the next start", slog.LevelWarn
			default:
				outcome, level = "stopped with an error: "+err.Error(), slog.LevelWarn
			}
			return
		}
		if err == nil {
			continue // stopped on purpose: pause, update, remove
		}
		class := Classify(err)
		m.mu.Lock()
		m.failed = failedTables(err)
		m.mu.Unlock()
		s.cfg.Metrics.errors.WithLabelValues(m.name, string(class)).Inc()
		switch class {
		case ClassPermanent:
			log.Error("pipeline failed", "error", err)
			s.setState(ctx, m, StateFailed, err.Error())
			continue
		case ClassNeedsResync:
			log.Error("pipeline needs a resync", "error", err)
			s.setState(ctx, m, StateNeedsResync, fmt.Sprintf("%s (recover with: cdcd pipelines resync %s)", err, m.name))
			continue
		case ClassResyncTables:
			if s.resyncTables(ctx, m, spec, err) {
				continue
			}
		}
		m.mu.Lock()
		m.attempts++
		attempts := m.attempts
		m.mu.Unlock()
		pol := s.policy(spec)
		if pol.MaxAttempts > 0 && attempts >= pol.MaxAttempts {
			msg := fmt.Sprintf("gave up after %d consecutive failures (retry.max_attempts): %v", attempts, err)
			log.Error("pipeline failed", "error", msg)
			s.setState(ctx, m, StateFailed, msg)
			continue
		}
		d := backoff(pol, attempts)
		log.Warn("pipeline attempt failed, retrying", "error", err, "attempt", attempts, "backoff", d)
		s.event(ctx, m.name, EventError, LevelWarning, "attempt %d failed, retrying in %s: %v", attempts, d.Round(time.Millisecond), err)
		m.mu.Lock()
		m.nextRetry = time.Now().Add(d)
		m.mu.Unlock()
		s.setState(ctx, m, StateRetrying, err.Error())
		if !wait(ctx, m, d) {
			return
		}
		m.mu.Lock()
		m.nextRetry = time.Time{}
		m.mu.Unlock()
	}
}

// resyncTables handles a ResyncTablesError: it requests the tables' resync
// and has the loop start the pipeline again at once (true), or parks the
// pipeline as needs_resync when it cannot (true), or, after maxLostResyncs
// requests in a row that did not let a run commit, leaves the error to the
// retry policy (false).
func (s *Supervisor) resyncTables(ctx context.Context, m *managed, spec Spec, err error) bool {
	log := s.log.With("pipeline", m.name)
	var rt *ResyncTablesError
	errors.As(err, &rt)
	names := joinTables(rt.Tables)
	if spec.ResyncTables == nil {
		log.Error("pipeline needs a resync of tables", "error", err)
		s.setState(ctx, m, StateNeedsResync, fmt.Sprintf("%s (recover with: cdcd pipelines resync %s --tables %s)", err, m.name, strings.ReplaceAll(names, " ", "")))
		return true
	}
	m.mu.Lock()
	m.lostResyncs++
	n := m.lostResyncs
	m.mu.Unlock()
	if n > maxLostResyncs {
		return false
	}
	if rerr := spec.ResyncTables(ctx, rt.Tables); rerr != nil {
		log.Error("the resync of tables whose destination was lost could not be requested", "error", rerr, "tables", names)
		s.setState(ctx, m, StateNeedsResync, fmt.Sprintf("%s; requesting their resync failed: %v (recover with: cdcd pipelines resync %s --tables %s)", err, rerr, m.name, strings.ReplaceAll(names, " ", "")))
		return true
	}
	log.Warn("destination table lost: resyncing its source tables", "error", err, "tables", names)
	s.event(ctx, m.name, EventSnapshot, LevelWarning, "%v: resyncing %s (the rest of the pipeline keeps streaming)", rt.Err, names)
	m.mu.Lock()
	m.restart = true
	m.mu.Unlock()
	return true
}

// maxLostResyncs bounds the resyncs a pipeline requests for lost destination
// tables without a commit in between: a destination that keeps losing tables
// is left to the retry policy.
const maxLostResyncs = 3

// attempt builds and runs one runner. A run that made progress resets the
// failure count, so only consecutive fruitless failures escalate.
func (s *Supervisor) attempt(ctx context.Context, m *managed, spec Spec) error {
	cfg, err := spec.Build(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("build pipeline: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = s.cfg.Metrics
	}
	if cfg.Logger == nil {
		cfg.Logger = s.cfg.Logger
	}
	if cfg.Warn == nil {
		log := s.log.With("pipeline", m.name)
		cfg.Warn = func(w string) {
			m.mu.Lock()
			seen := m.warned[w]
			if m.warned == nil {
				m.warned = map[string]bool{}
			}
			m.warned[w] = true
			m.mu.Unlock()
			if !seen {
				log.Warn(w)
				s.event(ctx, m.name, EventWarning, LevelWarning, "%s", w)
			}
		}
	}
	if cfg.Events == nil {
		cfg.Events = s.cfg.Events
	}
	committed := cfg.Committed
	cfg.Committed = func() {
		s.recovered(ctx, m)
		if committed != nil {
			committed()
		}
	}
	r, err := NewRunner(cfg)
	if err != nil {
		return component.Permanent(err)
	}
	m.mu.Lock()
	m.runner = r
	m.mu.Unlock()
	err = r.Run(ctx)
	last := r.Progress()
	last.LagSeconds, last.CaughtUp, last.LagBytes, last.Source = nil, false, nil, nil
	for i := range last.Tables {
		last.Tables[i].ETA = nil
	}
	m.mu.Lock()
	m.last = last
	m.mu.Unlock()
	return err
}

// recovered ends a streak of failed attempts once an attempt commits: the
// count and the last error clear, and the state is the run's again.
func (s *Supervisor) recovered(ctx context.Context, m *managed) {
	m.mu.Lock()
	attempts, retrying := m.attempts, m.state == StateRetrying
	m.attempts, m.nextRetry, m.lostResyncs = 0, time.Time{}, 0
	m.mu.Unlock()
	if !retrying && attempts == 0 {
		return
	}
	s.log.Info("pipeline recovered", "pipeline", m.name, "failed_attempts", attempts)
	s.event(ctx, m.name, EventState, LevelInfo, "recovered after %d failed attempt(s)", attempts)
	s.setState(ctx, m, StateCreated, "")
}

// event records an event of pipeline name, if anyone listens.
func (s *Supervisor) event(ctx context.Context, name string, kind EventKind, level EventLevel, format string, args ...any) {
	if s.cfg.Events == nil {
		return
	}
	s.cfg.Events.RecordEvent(context.WithoutCancel(ctx), Event{Pipeline: name, At: time.Now().UTC(), Kind: kind, Level: level, Message: fmt.Sprintf(format, args...)})
}
