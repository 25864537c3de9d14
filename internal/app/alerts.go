package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/cdcd-dev/cdcd/internal/alerts"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/notify"
	"github.com/cdcd-dev/cdcd/verify"
)

// NewAlerts returns the alert engine over the app's pipelines, its alert
// channels built from conns (each time, so a changed connection applies to
// the next notification) and the metadata store.
func (a *App) NewAlerts(conns ConnectionSource) *alerts.Engine {
	return alerts.New(alerts.Config{
		Statuses:   a.Supervisor.List,
		Channel:    func(ctx context.Context, name string) (notify.Notifier, error) { return a.channel(ctx, name, conns) },
		Store:      store.Alerts(a.Store),
		LastVerify: a.lastVerify,
		Logger:     a.log(),
		Metrics:    a.Registerer,
	})
}

// lastVerify returns the outcome of pipeline name's latest verify, for the
// verify_mismatch condition.
func (a *App) lastVerify(ctx context.Context, name string) (alerts.Verified, bool, error) {
	vs, err := store.Verifications(a.Store).ListVerifications(ctx, name, 1)
	if err != nil || len(vs) == 0 {
		return alerts.Verified{}, false, err
	}
	var r VerifyReport
	if err := json.Unmarshal(vs[0].Report, &r); err != nil {
		return alerts.Verified{}, false, fmt.Errorf("stored verify report of pipeline %q: %w", name, err)
	}
	v := alerts.Verified{At: r.StartedAt}
	for _, t := range r.Tables {
		if t.Status == verify.StatusDifferent {
			v.Missing, v.Extra, v.Different = v.Missing+t.Missing, v.Extra+t.Extra, v.Different+t.Different
			v.Tables = append(v.Tables, t.Table)
		}
	}
	return v, true, nil
}

// channel builds the notifier of alert channel name.
func (a *App) channel(ctx context.Context, name string, conns ConnectionSource) (notify.Notifier, error) {
	cs, err := conns(ctx)
	if err != nil {
		return nil, err
	}
	c, ok := cs[name]
	if !ok {
		return nil, component.Permanent(fmt.Errorf("%w: %q (it was deleted?)", alerts.ErrNoChannel, name))
	}
	f, ok := a.Registry.Notifiers[c.Type]
	if !ok {
		return nil, component.Permanent(fmt.Errorf("connection %q is a %s, not an alert channel", name, c.Type))
	}
	node, err := a.Secrets.Expand(&c.Config, "config")
	if err != nil {
		return nil, component.Permanent(err)
	}
	n, err := f.New(node, notify.Deps{Logger: a.log()})
	if err != nil {
		return nil, component.Permanent(fmt.Errorf("alert channel %q: %w", name, err))
	}
	return n, nil
}

// AlertRules returns the stored alert rules.
func (a *App) AlertRules(ctx context.Context) (config.Alerts, error) {
	r, err := store.Alerts(a.Store).LoadAlertRules(ctx)
	if err != nil {
		return config.Alerts{}, err
	}
	return r.WithDefaults(), nil
}

// ApplyAlerts validates the alert rules against the stored connections,
// stores them and puts them in force.
func (a *App) ApplyAlerts(ctx context.Context, r config.Alerts) error {
	conns, err := a.StoredConnections(ctx)
	if err != nil {
		return err
	}
	if err := config.ValidateAlerts(r, a.Registry, conns); err != nil {
		return err
	}
	if err := store.Alerts(a.Store).SaveAlertRules(ctx, r); err != nil {
		return err
	}
	if a.Alerts != nil {
		a.Alerts.SetRules(r)
	}
	return nil
}

// ActiveAlerts returns the pending and firing alerts.
func (a *App) ActiveAlerts(context.Context) ([]alerts.Active, error) {
	if a.Alerts == nil {
		return []alerts.Active{}, nil
	}
	return a.Alerts.Active(), nil
}

// AlertHistory returns the newest deliveries first.
func (a *App) AlertHistory(ctx context.Context, limit int) ([]alerts.HistoryEntry, error) {
	return store.Alerts(a.Store).ListAlertHistory(ctx, limit)
}

// alertChannelInUse returns the rules that notify connection name.
func (a *App) alertChannelInUse(ctx context.Context, name string) ([]string, error) {
	r, err := store.Alerts(a.Store).LoadAlertRules(ctx)
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, rule := range r.Rules {
		if slices.Contains(rule.Channels, name) {
			rules = append(rules, rule.Name)
		}
	}
	return rules, nil
}
