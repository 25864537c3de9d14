package notify

import (
	"context"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func node(t *testing.T, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(s), &n))
	return n.Content[0]
}

var sample = Notification{Status: Firing, Rule: "lag", Pipeline: "orders", Severity: "warning", ID: "lag/orders",
	Summary: "orders is 6m40s behind <its source>", Detail: "The oldest change not yet durable is 400s old.", Value: "400s",
	StartedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}

// TestSlack: the payload is an incoming webhook's documented one: text (the
// fallback) and blocks (section and context, mrkdwn with <, > and & escaped).
func TestSlack(t *testing.T) {
	t.Parallel()
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	n, err := SlackFactory().New(node(t, "webhook_url: "+srv.URL+"/services/T000/B000/XXXX"), Deps{})
	require.NoError(t, err)
	require.NoError(t, n.Notify(context.Background(), sample))
	require.Equal(t, "[FIRING] orders is 6m40s behind <its source>", got["text"])
	blocks := got["blocks"].([]any)
	require.Len(t, blocks, 2)
	section := blocks[0].(map[string]any)
	require.Equal(t, "section", section["type"])
	text := section["text"].(map[string]any)
	require.Equal(t, "mrkdwn", text["type"])
	require.Contains(t, text["text"], "&lt;its source&gt;")
	require.Equal(t, "context", blocks[1].(map[string]any)["type"])

	_, err = SlackFactory().New(node(t, "webhook_url: ftp://x"), Deps{})
	require.ErrorContains(t, err, "webhook_url: must be an http(s) URL")
}

// TestWebhookSignature: the body is the notification's JSON, signed so that
// a receiver can verify it; a 4xx is permanent, a 5xx is retried, and the
// error never carries the URL's path (a Slack URL's is its secret).
func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef-secret"
	status := http.StatusOK
	var body []byte
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		hdr = r.Header.Clone()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	n, err := WebhookFactory().New(node(t, "{url: "+srv.URL+"/hook/s3cretpath, secret: "+secret+", headers: {Authorization: Bearer x}}"), Deps{})
	require.NoError(t, err)
	require.NoError(t, n.Notify(context.Background(), sample))
	ts, err := strconv.ParseInt(hdr.Get("X-Cdcd-Timestamp"), 10, 64)
	require.NoError(t, err)
	require.Equal(t, Sign(secret, ts, body), hdr.Get("X-Cdcd-Signature"))
	require.NotEqual(t, Sign("another secret!!", ts, body), hdr.Get("X-Cdcd-Signature"))
	require.Equal(t, "Bearer x", hdr.Get("Authorization"))
	require.Equal(t, "lag/orders", hdr.Get("X-Cdcd-Alert-Id"))
	var back Notification
	require.NoError(t, json.Unmarshal(body, &back))
	require.Equal(t, sample, back)

	status = http.StatusNotFound
	err = n.Notify(context.Background(), sample)
	require.True(t, component.IsPermanent(err), "%v", err)
	require.NotContains(t, err.Error(), "s3cretpath")
	status = http.StatusBadGateway
	err = n.Notify(context.Background(), sample)
	require.Error(t, err)
	require.False(t, component.IsPermanent(err))

	_, err = WebhookFactory().New(node(t, "{url: "+srv.URL+", secret: short}"), Deps{})
	require.ErrorContains(t, err, "secret: required, at least 16 characters")
}

// TestEmail: a message over SMTP to a real receiver, with the alert in the
// subject and body; a server without STARTTLS is refused under tls: starttls.
func TestEmail(t *testing.T) {
	t.Parallel()
	rcv := testenv.StartSMTP(t)
	host, port, _ := strings.Cut(rcv.Addr, ":")
	n, err := EmailFactory().New(node(t, `{host: `+host+`, port: `+port+`, tls: none, from: "cdcd <cdcd@example.com>", to: [ops@example.com, "On Call <oncall@example.com>"]}`), Deps{})
	require.NoError(t, err)
	require.NoError(t, n.Notify(context.Background(), sample))
	msgs := rcv.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "cdcd@example.com", msgs[0].From)
	require.Equal(t, []string{"ops@example.com", "oncall@example.com"}, msgs[0].To)
	head, body, _ := strings.Cut(msgs[0].Data, "\r\n\r\n")
	require.Contains(t, head, "Subject: cdcd [FIRING] orders is 6m40s behind <its source>")
	plain, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	require.NoError(t, err)
	require.Contains(t, string(plain), "pipeline: orders")
	require.Contains(t, string(plain), "The oldest change not yet durable is 400s old.")

	strict, err := EmailFactory().New(node(t, `{host: `+host+`, port: `+port+`, from: cdcd@example.com, to: [ops@example.com]}`), Deps{})
	require.NoError(t, err)
	err = strict.Notify(context.Background(), sample)
	require.True(t, component.IsPermanent(err))
	require.ErrorContains(t, err, "does not offer STARTTLS")

	_, err = EmailFactory().New(node(t, `{host: h, tls: none, password: p, from: "not an address", to: []}`), Deps{})
	require.ErrorContains(t, err, "from: not an address")
	require.ErrorContains(t, err, "to: at least one address")
	require.ErrorContains(t, err, "password: not sent over a plain connection")
}
