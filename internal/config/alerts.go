package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/registry"
)

// Alerts is the alerts document: rules evaluated against every pipeline's
// status, notifying alert channels (connections of type slack, webhook or
// email) when one fires and when it resolves.
type Alerts struct {
	// EvaluationInterval is how often the rules are evaluated (default 15s).
	EvaluationInterval Duration    `yaml:"evaluation_interval,omitempty" json:"evaluation_interval,omitempty"`
	Rules              []AlertRule `yaml:"rules" json:"rules"`
}

// AlertRule is one condition, the pipelines it watches and where it notifies.
type AlertRule struct {
	Name string `yaml:"name" json:"name"`
	// Condition is one of AlertConditions.
	Condition string `yaml:"condition" json:"condition"`
	// Threshold is the value the condition compares with (lag_seconds,
	// retained_wal_bytes, verify_mismatch).
	Threshold float64 `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	// For is how long the condition must hold before the alert fires.
	For Duration `yaml:"for,omitempty" json:"for,omitempty"`
	// Pipelines are the pipelines it watches; none: every pipeline.
	Pipelines []string `yaml:"pipelines,omitempty" json:"pipelines,omitempty"`
	// Channels are the alert channels (connection names) it notifies.
	Channels []string `yaml:"channels" json:"channels"`
	// Severity is info, warning (the default) or critical.
	Severity string `yaml:"severity,omitempty" json:"severity,omitempty"`
	// RepeatInterval, when set, notifies again while the alert keeps firing.
	RepeatInterval Duration `yaml:"repeat_interval,omitempty" json:"repeat_interval,omitempty"`
}

// AlertConditions are the conditions a rule may watch, with what they mean.
var AlertConditions = map[string]string{
	"lag_seconds":        "the lag (docs/observability.md) is over threshold seconds",
	"retained_wal_bytes": "the Postgres replication slot retains more than threshold bytes of WAL",
	"wal_status":         "the Postgres replication slot's wal_status is not reserved",
	"not_advancing":      "the pipeline does not run (paused, retrying, failed), or it is behind and its committed position did not move since the last evaluation",
	"pipeline_failed":    "the pipeline is failed or needs_resync",
	"schema_change_held": "a table is held by the schema-change policy",
	"retrying":           "attempts of the pipeline fail and are retried",
	"verify_mismatch":    "the pipeline's latest verify found more than threshold rows (default 0: any) missing, extra or different at the destination",
}

// AlertRuleName is what a rule's name must match.
var AlertRuleName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// DefaultEvaluationInterval is how often rules are evaluated by default.
const DefaultEvaluationInterval = 15 * time.Second

// WithDefaults returns a with every unset value at its default.
func (a Alerts) WithDefaults() Alerts {
	if a.EvaluationInterval == 0 {
		a.EvaluationInterval = Duration(DefaultEvaluationInterval)
	}
	rules := make([]AlertRule, len(a.Rules))
	for i, r := range a.Rules {
		if r.Severity == "" {
			r.Severity = "warning"
		}
		rules[i] = r
	}
	a.Rules = rules
	return a
}

// ParseAlerts decodes an alerts document strictly.
func ParseAlerts(b []byte) (Alerts, error) {
	var a Alerts
	err := decodeStrict(b, &a)
	return a, err
}

// ValidateAlerts checks an alerts document: every problem with its path. Its
// channels must be connections of an alert channel type.
func ValidateAlerts(a Alerts, reg *registry.Registry, conns map[string]Connection) error {
	return validateAlerts(a, "alerts", reg, conns).err()
}

func validateAlerts(a Alerts, path string, reg *registry.Registry, conns map[string]Connection) Problems {
	var ps Problems
	if iv := time.Duration(a.EvaluationInterval); iv != 0 && (iv < time.Second || iv > time.Hour) {
		ps.add(path+".evaluation_interval", "must be from 1s to 1h")
	}
	seen := map[string]bool{}
	for i, r := range a.Rules {
		rp := fmt.Sprintf("%s.rules[%s]", path, r.Name)
		if !AlertRuleName.MatchString(r.Name) {
			rp = fmt.Sprintf("%s.rules[%d]", path, i)
			ps.add(rp+".name", "must match %s", AlertRuleName)
		} else if seen[r.Name] {
			ps.add(rp+".name", "another rule has this name")
		}
		seen[r.Name] = true
		if _, ok := AlertConditions[r.Condition]; !ok {
			names := make([]string, 0, len(AlertConditions))
			for k := range AlertConditions {
				names = append(names, k)
			}
			slices.Sort(names)
			ps.add(rp+".condition", "unknown condition %q (one of %s)", r.Condition, strings.Join(names, ", "))
		}
		switch r.Condition {
		case "verify_mismatch":
			if r.Threshold < 0 || r.Threshold != float64(int64(r.Threshold)) {
				ps.add(rp+".threshold", "must be a whole number of rows, 0 or more (0: any difference)")
			}
		case "lag_seconds", "retained_wal_bytes":
			if r.Threshold <= 0 {
				ps.add(rp+".threshold", "required: a positive number (%s)", map[string]string{"lag_seconds": "seconds", "retained_wal_bytes": "bytes"}[r.Condition])
			}
		default:
			if r.Threshold != 0 {
				ps.add(rp+".threshold", "condition %s takes no threshold", r.Condition)
			}
		}
		if r.For < 0 || time.Duration(r.For) > 7*24*time.Hour {
			ps.add(rp+".for", "must be from 0 to 168h")
		}
		if r.RepeatInterval != 0 && time.Duration(r.RepeatInterval) < time.Minute {
			ps.add(rp+".repeat_interval", "must be at least 1m (or unset: notify once while firing)")
		}
		if r.Severity != "" && r.Severity != "info" && r.Severity != "warning" && r.Severity != "critical" {
			ps.add(rp+".severity", "must be info, warning or critical")
		}
		for j, p := range r.Pipelines {
			if !PipelineName.MatchString(p) {
				ps.add(fmt.Sprintf("%s.pipelines[%d]", rp, j), "must match %s", PipelineName)
			}
		}
		if len(r.Channels) == 0 {
			ps.add(rp+".channels", "at least one alert channel (a connection of type %s)", strings.Join(registry.Names(reg.Notifiers), ", "))
		}
		for j, ch := range r.Channels {
			c, ok := conns[ch]
			_, isNotifier := reg.Notifiers[c.Type]
			switch {
			case !ok:
				ps.add(fmt.Sprintf("%s.channels[%d]", rp, j), "no connection named %q", ch)
			case !isNotifier:
				ps.add(fmt.Sprintf("%s.channels[%d]", rp, j), "connection %q is a %s, not an alert channel (%s)", ch, c.Type, strings.Join(registry.Names(reg.Notifiers), ", "))
			}
		}
	}
	return ps
}
