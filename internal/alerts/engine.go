// Package alerts evaluates the alert rules (config.Alerts) against every
// pipeline's status and notifies their channels when an alert fires and when
// it resolves: once each (and again every repeat_interval, if set), retried
// with backoff when a channel does not take it, recorded in a history.
// Firing alerts are kept in the metadata store, so a restart neither fires
// them again nor forgets to resolve them.
package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/notify"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/prometheus/client_golang/prometheus"
)

// Active is an alert whose condition holds: pending until it held for the
// rule's `for`, then firing.
type Active struct {
	Rule       string    `json:"rule"`
	Pipeline   string    `json:"pipeline"`
	State      string    `json:"state"` // pending or firing
	Severity   string    `json:"severity"`
	Since      time.Time `json:"since"`
	FiredAt    time.Time `json:"fired_at,omitzero"`
	NotifiedAt time.Time `json:"notified_at,omitzero"`
	Value      string    `json:"value"`
	Summary    string    `json:"summary"`
	Detail     string    `json:"detail"`
	Channels   []string  `json:"channels"`
}

// HistoryEntry is one notification's delivery to one channel.
type HistoryEntry struct {
	At        time.Time     `json:"at"`
	Rule      string        `json:"rule"`
	Pipeline  string        `json:"pipeline"`
	Status    notify.Status `json:"status"`
	Channel   string        `json:"channel"`
	Delivered bool          `json:"delivered"`
	Attempts  int           `json:"attempts"`
	Error     string        `json:"error,omitempty"`
	Summary   string        `json:"summary"`
}

// Store keeps the firing alerts and the delivery history.
type Store interface {
	LoadFiring(ctx context.Context) ([]Active, error)
	SaveFiring(ctx context.Context, firing []Active) error
	AppendAlertHistory(ctx context.Context, e HistoryEntry) error
}

// Config is what an Engine needs.
type Config struct {
	// Statuses returns every pipeline's status.
	Statuses func() []pipeline.Status
	// Channel builds the notifier of an alert channel (a connection).
	Channel func(ctx context.Context, name string) (notify.Notifier, error)
	Store   Store
	Logger  *slog.Logger
	Metrics prometheus.Registerer
	// LastVerify returns the outcome of a pipeline's latest verify (false:
	// never verified). It is asked only while a verify_mismatch rule exists.
	LastVerify func(ctx context.Context, pipeline string) (Verified, bool, error)
	// Retry are the waits before each retry of a delivery (default 10s, 30s,
	// 1m, 5m, 15m: six attempts).
	Retry []time.Duration
}

// DefaultRetry are the waits between delivery attempts.
var DefaultRetry = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute}

// Verified is the outcome of a pipeline's latest verify: the rows it found
// missing, extra or different at the destination, and in which tables.
type Verified struct {
	At                        time.Time
	Missing, Extra, Different int64
	Tables                    []string
}

// Rows is how many rows differ in any way.
func (v Verified) Rows() int64 { return v.Missing + v.Extra + v.Different }

type key struct{ rule, pipeline string }

// Engine evaluates the rules and delivers notifications. Start it with Run.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	queue chan delivery
	kick  chan struct{}
	sent  *prometheus.CounterVec

	mu     sync.Mutex
	rules  config.Alerts
	active map[key]*Active
	last   map[string]offsets.Position // committed position per pipeline at the last evaluation
	loaded bool
}

// delivery is one notification on its way to one channel.
type delivery struct {
	channel  string
	n        notify.Notification
	attempts int
	due      time.Time
}

// New returns an engine with no rules.
func New(cfg Config) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retry == nil {
		cfg.Retry = DefaultRetry
	}
	e := &Engine{cfg: cfg, log: cfg.Logger.With("component", "alerts"), queue: make(chan delivery, 1024), kick: make(chan struct{}, 1),
		rules: config.Alerts{}.WithDefaults(), active: map[key]*Active{}, last: map[string]offsets.Position{}}
	e.sent = component.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdcd_alert_notifications_total", Help: "Alert notifications by channel, status (firing, resolved) and result (delivered, failed: after every retry).",
	}, []string{"channel", "status", "result"}))
	return e
}

// SetRules replaces the rules; alerts of rules that are gone resolve at the
// next evaluation.
func (e *Engine) SetRules(a config.Alerts) {
	e.mu.Lock()
	e.rules = a.WithDefaults()
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Rules returns the rules in force.
func (e *Engine) Rules() config.Alerts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rules
}

// Active returns the pending and firing alerts.
func (e *Engine) Active() []Active {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Active, 0, len(e.active))
	for _, a := range e.active {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Active) int { return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Pipeline, b.Pipeline)) })
	return out
}

// Run evaluates the rules every evaluation interval and delivers the
// notifications until ctx ends; deliveries in flight are abandoned then.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.load(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.deliver(ctx)
	}()
	defer wg.Wait()
	for {
		e.Evaluate(ctx, time.Now())
		iv := time.Duration(e.Rules().EvaluationInterval)
		t := time.NewTimer(iv)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-e.kick:
			t.Stop()
		}
	}
}

func (e *Engine) load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded || e.cfg.Store == nil {
		e.loaded = true
		return nil
	}
	firing, err := e.cfg.Store.LoadFiring(ctx)
	if err != nil {
		return fmt.Errorf("load the firing alerts: %w", err)
	}
	for _, a := range firing {
		e.active[key{a.Rule, a.Pipeline}] = &a
	}
	e.loaded = true
	return nil
}

// Evaluate runs every rule against every pipeline's status once, as of now.
func (e *Engine) Evaluate(ctx context.Context, now time.Time) {
	statuses := e.cfg.Statuses()
	verified := e.verified(ctx, statuses)
	e.mu.Lock()
	rules := e.rules
	seen := map[key]bool{}
	var notes []delivery
	changed := false
	for _, r := range rules.Rules {
		for i := range statuses {
			st := &statuses[i]
			if len(r.Pipelines) > 0 && !slices.Contains(r.Pipelines, st.Name) {
				continue
			}
			if v, known := verified[st.Name]; r.Condition == "verify_mismatch" && known && v == nil {
				seen[key{r.Name, st.Name}] = e.active[key{r.Name, st.Name}] != nil // unreadable: as it was
				continue
			}
			c, ok := check(r, st, e.last, verified)
			if !ok {
				continue
			}
			k := key{r.Name, st.Name}
			seen[k] = true
			a := e.active[k]
			if a == nil {
				a = &Active{Rule: r.Name, Pipeline: st.Name, State: "pending", Since: now}
				e.active[k] = a
			}
			a.Severity, a.Value, a.Summary, a.Detail, a.Channels = r.Severity, c.value, c.summary, c.detail, r.Channels
			switch {
			case a.State == "pending" && now.Sub(a.Since) >= time.Duration(r.For):
				a.State, a.FiredAt, a.NotifiedAt = "firing", now, now
				notes = append(notes, e.notes(*a, notify.Firing, now)...)
				changed = true
			case a.State == "firing" && r.RepeatInterval > 0 && now.Sub(a.NotifiedAt) >= time.Duration(r.RepeatInterval):
				a.NotifiedAt = now
				notes = append(notes, e.notes(*a, notify.Firing, now)...)
				changed = true
			}
		}
	}
	for k, a := range e.active {
		if seen[k] {
			continue
		}
		if a.State == "firing" {
			if !slices.ContainsFunc(rules.Rules, func(r config.AlertRule) bool { return r.Name == k.rule }) {
				a.Detail = "The rule was removed."
			}
			notes = append(notes, e.notes(*a, notify.Resolved, now)...)
			changed = true
		}
		delete(e.active, k)
	}
	for i := range statuses {
		e.last[statuses[i].Name] = statuses[i].Progress.CommittedPos
	}
	var firing []Active
	if changed {
		for _, a := range e.active {
			if a.State == "firing" {
				firing = append(firing, *a)
			}
		}
	}
	e.mu.Unlock()
	if changed && e.cfg.Store != nil {
		if err := e.cfg.Store.SaveFiring(ctx, firing); err != nil {
			e.log.Warn("save the firing alerts", "error", err)
		}
	}
	for _, d := range notes {
		select {
		case e.queue <- d:
		default:
			e.log.Error("alert notification dropped: too many waiting", "channel", d.channel, "rule", d.n.Rule, "pipeline", d.n.Pipeline)
		}
	}
}

// verified returns the latest verify of each pipeline, when a
// verify_mismatch rule needs it. A pipeline whose outcome cannot be read is
// left out (its alert stays as it is: pending or firing ones are kept).
func (e *Engine) verified(ctx context.Context, statuses []pipeline.Status) map[string]*Verified {
	e.mu.Lock()
	need := slices.ContainsFunc(e.rules.Rules, func(r config.AlertRule) bool { return r.Condition == "verify_mismatch" })
	e.mu.Unlock()
	if !need || e.cfg.LastVerify == nil {
		return nil
	}
	out := map[string]*Verified{}
	for _, st := range statuses {
		v, ok, err := e.cfg.LastVerify(ctx, st.Name)
		switch {
		case err != nil:
			e.log.Warn("read the latest verify", "pipeline", st.Name, "error", err)
			out[st.Name] = nil
		case ok:
			out[st.Name] = &v
		}
	}
	return out
}

// notes are the deliveries of one alert's change to each of its channels.
func (e *Engine) notes(a Active, status notify.Status, now time.Time) []delivery {
	n := notify.Notification{Status: status, Rule: a.Rule, Pipeline: a.Pipeline, Severity: a.Severity, Summary: a.Summary, Detail: a.Detail,
		Value: a.Value, StartedAt: a.Since.UTC(), ID: a.Rule + "/" + a.Pipeline}
	if status == notify.Resolved {
		n.ResolvedAt = now.UTC()
		n.Summary = "resolved: " + a.Summary
	}
	out := make([]delivery, len(a.Channels))
	for i, ch := range a.Channels {
		out[i] = delivery{channel: ch, n: n, due: now}
	}
	return out
}

// deliver sends the queued notifications, retrying each per cfg.Retry, in
// the order they became due.
func (e *Engine) deliver(ctx context.Context) {
	var waiting []delivery
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		slices.SortStableFunc(waiting, func(a, b delivery) int { return a.due.Compare(b.due) })
		timer.Stop()
		var due <-chan time.Time
		if len(waiting) > 0 {
			timer.Reset(time.Until(waiting[0].due))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case d := <-e.queue:
			waiting = append(waiting, d)
			continue
		case <-due:
		}
		now := time.Now()
		var later []delivery
		for _, d := range waiting {
			if d.due.After(now) {
				later = append(later, d)
				continue
			}
			if next, retry := e.attempt(ctx, d); retry {
				later = append(later, next)
			}
		}
		waiting = later
	}
}

// attempt delivers d once; it returns the next attempt if one is due.
func (e *Engine) attempt(ctx context.Context, d delivery) (delivery, bool) {
	d.attempts++
	err := e.send(ctx, d)
	if err == nil {
		e.record(ctx, d, true, nil)
		return d, false
	}
	if ctx.Err() != nil {
		return d, false
	}
	if d.attempts > len(e.cfg.Retry) || component.IsPermanent(err) {
		e.log.Error("alert notification not delivered", "channel", d.channel, "rule", d.n.Rule, "pipeline", d.n.Pipeline, "status", d.n.Status, "attempts", d.attempts, "error", err)
		e.record(ctx, d, false, err)
		return d, false
	}
	wait := e.cfg.Retry[d.attempts-1]
	e.log.Warn("alert notification failed, retrying", "channel", d.channel, "rule", d.n.Rule, "pipeline", d.n.Pipeline, "attempt", d.attempts, "retry_in", wait, "error", err)
	d.due = time.Now().Add(wait)
	return d, true
}

func (e *Engine) send(ctx context.Context, d delivery) error {
	n, err := e.cfg.Channel(ctx, d.channel)
	if err != nil {
		return fmt.Errorf("alert channel %s: %w", d.channel, err)
	}
	return n.Notify(ctx, d.n)
}

func (e *Engine) record(ctx context.Context, d delivery, ok bool, err error) {
	result := "delivered"
	if !ok {
		result = "failed"
	}
	e.sent.WithLabelValues(d.channel, string(d.n.Status), result).Inc()
	if e.cfg.Store == nil {
		return
	}
	h := HistoryEntry{At: time.Now().UTC(), Rule: d.n.Rule, Pipeline: d.n.Pipeline, Status: d.n.Status, Channel: d.channel, Delivered: ok,
		Attempts: d.attempts, Summary: d.n.Summary}
	if err != nil {
		h.Error = err.Error()
	}
	if err := e.cfg.Store.AppendAlertHistory(context.WithoutCancel(ctx), h); err != nil {
		e.log.Warn("record an alert delivery", "error", err)
	}
}

// ErrNoChannel is returned for an alert channel that does not exist.
var ErrNoChannel = errors.New("no such alert channel")
