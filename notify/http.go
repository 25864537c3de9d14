package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"go.yaml.in/yaml/v3"
)

// httpTimeout bounds one delivery.
const httpTimeout = 15 * time.Second

// post sends body to u as JSON with headers; a 4xx other than 408 and 429 is
// permanent (the receiver refuses this request, retrying will not help).
func post(ctx context.Context, client *http.Client, u string, body []byte, headers map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
	if err != nil {
		return component.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cdcd-alerts")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		// the URL may carry a secret (a Slack webhook's path): say only the host
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", host(u), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("%s answered %s: %s", host(u), resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return component.Permanent(err)
	}
	return err
}

func host(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Scheme + "://" + p.Host
	}
	return "the endpoint"
}

func checkURL(field, u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return fmt.Errorf("%s: must be an http(s) URL", field)
	}
	return nil
}

// SlackConfig configures a Slack incoming webhook.
type SlackConfig struct {
	// WebhookURL is the incoming webhook's URL (a secret: use a reference).
	WebhookURL string `yaml:"webhook_url" json:"webhook_url"`
}

// SlackFactory builds Slack notifiers.
func SlackFactory() Factory {
	return Factory{
		Spec: func() any { return SlackConfig{} },
		New: func(raw *yaml.Node, _ Deps) (Notifier, error) {
			var c SlackConfig
			if err := component.Decode(raw, &c); err != nil {
				return nil, err
			}
			if c.WebhookURL == "" {
				return nil, errors.New("webhook_url: required")
			}
			if err := checkURL("webhook_url", c.WebhookURL); err != nil {
				return nil, err
			}
			return &slack{url: c.WebhookURL, client: &http.Client{}}, nil
		},
	}
}

type slack struct {
	url    string
	client *http.Client
}

// slackMessage is an incoming webhook's payload: text (the fallback shown in
// notifications) and blocks (the message shown in the channel).
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type string     `json:"type"`
	Text *slackText `json:"text,omitempty"`
	// Elements of a context block.
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"` // mrkdwn or plain_text
	Text string `json:"text"`
}

// slackEscape escapes what Slack's mrkdwn reads as markup.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func (s *slack) Notify(ctx context.Context, n Notification) error {
	icon := map[Status]string{Firing: ":rotating_light:", Resolved: ":white_check_mark:", Test: ":wave:"}[n.Status]
	var facts []string
	if n.Pipeline != "" {
		facts = append(facts, "*pipeline* "+slackEscape.Replace(n.Pipeline))
	}
	if n.Value != "" {
		facts = append(facts, "*value* "+slackEscape.Replace(n.Value))
	}
	facts = append(facts, "*rule* "+slackEscape.Replace(n.Rule), "*severity* "+n.Severity)
	body := "*" + slackEscape.Replace(n.Title()) + "*"
	if n.Detail != "" {
		body += "\n" + slackEscape.Replace(n.Detail)
	}
	msg := slackMessage{Text: n.Title(), Blocks: []slackBlock{
		{Type: "section", Text: &slackText{Type: "mrkdwn", Text: icon + " " + body}},
		{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: strings.Join(facts, "  ·  ")}}},
	}}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return post(ctx, s.client, s.url, b, nil)
}

// WebhookConfig configures a generic JSON webhook.
type WebhookConfig struct {
	URL string `yaml:"url" json:"url"`
	// Secret signs each request: X-Cdcd-Signature is
	// "sha256=" + hex(HMAC-SHA256(secret, X-Cdcd-Timestamp + "." + body)).
	Secret string `yaml:"secret" json:"secret"`
	// Headers are sent with each request (an Authorization, say).
	Headers map[string]string `yaml:"headers" json:"headers"`
}

// WebhookFactory builds webhook notifiers.
func WebhookFactory() Factory {
	return Factory{
		Spec: func() any { return WebhookConfig{} },
		New: func(raw *yaml.Node, _ Deps) (Notifier, error) {
			var c WebhookConfig
			if err := component.Decode(raw, &c); err != nil {
				return nil, err
			}
			var errs []error
			if c.URL == "" {
				errs = append(errs, errors.New("url: required"))
			} else if err := checkURL("url", c.URL); err != nil {
				errs = append(errs, err)
			}
			if len(c.Secret) < 16 {
				errs = append(errs, errors.New("secret: required, at least 16 characters (receivers verify X-Cdcd-Signature with it)"))
			}
			if err := errors.Join(errs...); err != nil {
				return nil, err
			}
			return &webhook{cfg: c, client: &http.Client{}, now: time.Now}, nil
		},
	}
}

type webhook struct {
	cfg    WebhookConfig
	client *http.Client
	now    func() time.Time
}

// Sign returns the X-Cdcd-Signature of body sent at ts (Unix seconds).
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *webhook) Notify(ctx context.Context, n Notification) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	ts := w.now().Unix()
	h := map[string]string{"X-Cdcd-Timestamp": strconv.FormatInt(ts, 10), "X-Cdcd-Signature": Sign(w.cfg.Secret, ts, b), "X-Cdcd-Alert-Id": n.ID}
	for k, v := range w.cfg.Headers {
		h[k] = v
	}
	return post(ctx, w.client, w.cfg.URL, b, h)
}
