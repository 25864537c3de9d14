// Package notify delivers alert notifications: to a Slack incoming webhook,
// to any HTTP endpoint as JSON signed with HMAC-SHA256, and by email over
// SMTP. A notifier is configured as a connection (type slack, webhook or
// email), so its secrets are stored, redacted and resolved like every other
// connection's, and `cdcd connections test NAME` sends a test notification.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
)

// Status is a notification's status.
type Status string

// Statuses.
const (
	Firing   Status = "firing"
	Resolved Status = "resolved"
	Test     Status = "test"
)

// Notification is one alert's change: it fired or it resolved.
type Notification struct {
	Status   Status `json:"status"`
	Rule     string `json:"rule"`
	Pipeline string `json:"pipeline,omitempty"`
	Severity string `json:"severity"`
	// Summary is one line; Detail says what was seen and what to do.
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
	// Value is the observed value that fired the rule (a lag, a byte count).
	Value      string    `json:"value,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// ID identifies the alert (rule and pipeline) across its notifications.
	ID string `json:"id"`
}

// Title is the notification's one-line text: "[FIRING] …".
func (n Notification) Title() string {
	return "[" + strings.ToUpper(string(n.Status)) + "] " + n.Summary
}

// Text is the notification as plain text.
func (n Notification) Text() string {
	var b strings.Builder
	b.WriteString(n.Title())
	b.WriteString("\n")
	if n.Detail != "" {
		b.WriteString(n.Detail + "\n")
	}
	fmt.Fprintf(&b, "rule: %s\n", n.Rule)
	if n.Pipeline != "" {
		fmt.Fprintf(&b, "pipeline: %s\n", n.Pipeline)
	}
	if n.Value != "" {
		fmt.Fprintf(&b, "value: %s\n", n.Value)
	}
	fmt.Fprintf(&b, "severity: %s\nsince: %s\n", n.Severity, n.StartedAt.UTC().Format(time.RFC3339))
	if !n.ResolvedAt.IsZero() {
		fmt.Fprintf(&b, "resolved: %s\n", n.ResolvedAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Notifier delivers notifications. Notify returns an error when the
// receiver did not take the notification; a component.Permanent one is not
// worth retrying (a rejected configuration).
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Deps is what a notifier gets from the engine.
type Deps struct {
	Logger *slog.Logger
}

// Factory builds a notifier from its config.
type Factory = component.Factory[Notifier, Deps]

// Types are the notifier types by name, for a registry.
func Types() map[string]Factory {
	return map[string]Factory{"slack": SlackFactory(), "webhook": WebhookFactory(), "email": EmailFactory()}
}
