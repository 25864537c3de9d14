package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/notify"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// receiver is a local HTTP endpoint that keeps what it is sent.
type receiver struct {
	mu   sync.Mutex
	got  []map[string]any
	srv  *httptest.Server
	fail int // answer 503 to this many requests first
}

func newReceiver(t *testing.T, check func(r *http.Request, body []byte) error) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := check(r, body); err != nil {
			t.Errorf("receiver: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.fail > 0 {
			rc.fail--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		rc.got = append(rc.got, m)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// has reports whether a notification with status whose text contains want
// arrived.
func (rc *receiver) has(status, want string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, m := range rc.got {
		s, _ := m["status"].(string)
		text, _ := m["summary"].(string)
		if t, ok := m["text"].(string); ok { // Slack
			text = t
			s = strings.ToLower(strings.Trim(strings.SplitN(t, "]", 2)[0], "["))
		}
		if s == status && strings.Contains(text, want) {
			return true
		}
	}
	return false
}

func (rc *receiver) count(status, want string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, m := range rc.got {
		if s, _ := m["status"].(string); s == status && strings.Contains(fmt.Sprint(m["summary"]), want) {
			n++
		}
	}
	return n
}

// TestAlertsThroughServe: built-in alerts fire and resolve against local
// HTTP (a generic webhook checked by its HMAC signature, and Slack's
// incoming-webhook payload) and SMTP receivers, on a real Postgres pipeline:
// lag (a blocked sink), not advancing (paused), retained WAL, a failed
// pipeline and one retrying; each fires once and resolves once; a
// delivery a receiver refuses is retried; the history and the CLI show them.
func TestAlertsThroughServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const secret = "a-webhook-secret-of-some-length"
	hook := newReceiver(t, func(r *http.Request, body []byte) error {
		ts, err := strconv.ParseInt(r.Header.Get("X-Cdcd-Timestamp"), 10, 64)
		if err != nil {
			return err
		}
		if r.Header.Get("X-Cdcd-Signature") != notify.Sign(secret, ts, body) {
			return fmt.Errorf("bad signature")
		}
		return nil
	})
	hook.fail = 1 // the first delivery is retried
	slack := newReceiver(t, func(r *http.Request, body []byte) error {
		var m struct {
			Text   string
			Blocks []struct{ Type string }
		}
		if err := json.Unmarshal(body, &m); err != nil || m.Text == "" || len(m.Blocks) == 0 || m.Blocks[0].Type != "section" {
			return fmt.Errorf("not an incoming-webhook payload: %s", body)
		}
		return nil
	})
	smtp := testenv.StartSMTP(t)
	smtpHost, smtpPort, _ := strings.Cut(smtp.Addr, ":")

	pg := testenv.StartPostgres(t)
	srcDSN := pg.CreateDatabase(t, "app")
	dstDSN := pg.CreateDatabase(t, "warehouse")
	src, err := pgx.Connect(ctx, srcDSN)
	require.NoError(t, err)
	defer src.Close(ctx)
	_, err = src.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g`)
	require.NoError(t, err)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "alerts.yaml")
	write := func(walThreshold string) {
		require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
connections:
  - {name: hook, type: webhook, config: {url: %q, secret: %q}}
  - {name: chat, type: slack, config: {webhook_url: %q}}
  - {name: mail, type: email, config: {host: %s, port: %s, tls: none, from: cdcd@example.com, to: [ops@example.com]}}
pipelines:
  - name: pg
    source:
      type: postgres
      config: {dsn: %q, tables: [public.t], heartbeat_interval: 1s, status_interval: 500ms, slot_poll_interval: 1s}
    sink: {type: postgres, config: {dsn: %q, schema: replica}}
    batch: {max_wait: 50ms}
alerts:
  evaluation_interval: 1s
  rules:
    - {name: lag, condition: lag_seconds, threshold: 3, for: 1s, pipelines: [pg], channels: [hook, mail], severity: critical}
    - {name: stuck, condition: not_advancing, for: 2s, pipelines: [pg], channels: [hook]}
    - {name: wal, condition: retained_wal_bytes, threshold: %s, pipelines: [pg], channels: [hook]}
    - {name: failed, condition: pipeline_failed, channels: [chat]}
    - {name: retrying, condition: retrying, for: 1s, channels: [hook]}
    - {name: diff, condition: verify_mismatch, channels: [hook]}
`, hook.srv.URL+"/hook", secret, slack.srv.URL+"/services/T0/B0/x", smtpHost, smtpPort, srcDSN, dstDSN, walThreshold)), 0o600))
	}
	write("1")
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	out := cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Contains(t, out, "alerts: 6 rule(s) applied")
	require.Contains(t, cli(t, env, 0, "connections", "test", "chat"), "connection chat: ok")
	require.Eventually(t, func() bool { return slack.has("test", "cdcd test notification to chat") }, 10*time.Second, 50*time.Millisecond)

	wait := func(rc *receiver, status, want string) {
		t.Helper()
		require.Eventually(t, func() bool { return rc.has(status, want) }, 60*time.Second, 100*time.Millisecond,
			"no %s notification %q; active: %s", status, want, cli(t, env, 0, "alerts", "active"))
	}
	// retained WAL over 1 byte: fires (after one refused delivery), then a
	// higher threshold resolves it
	wait(hook, "firing", "the replication slot of pipeline pg retains")
	write("1e12")
	cli(t, env, 0, "alerts", "apply", "-f", cfg)
	wait(hook, "resolved", "the replication slot of pipeline pg retains")

	// lag: the sink's table locked while the source writes
	require.Eventually(t, func() bool { return strings.Contains(cli(t, env, 0, "pipelines", "list"), "0s (caught up)") }, 30*time.Second, 100*time.Millisecond)
	release := blockSink(t, dstDSN, "replica.t")
	_, err = src.Exec(ctx, `UPDATE t SET v = v + 1`)
	require.NoError(t, err)
	wait(hook, "firing", "behind its source")
	require.Eventually(t, func() bool {
		for _, m := range smtp.Messages() {
			if strings.Contains(m.Data, "Subject: cdcd [FIRING] pipeline pg is") {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the lag alert by email")
	wait(hook, "firing", "pipeline pg is behind and its position does not advance")
	require.Contains(t, cli(t, env, 0, "alerts", "active"), "firing")
	release()
	wait(hook, "resolved", "pipeline pg is behind and its position does not advance")
	wait(hook, "resolved", "behind its source")
	require.Eventually(t, func() bool {
		for _, m := range smtp.Messages() {
			if strings.Contains(m.Data, "Subject: cdcd [RESOLVED]") {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the lag alert resolved by email")

	// paused: not advancing; resumed: resolved
	cli(t, env, 0, "pipelines", "pause", "pg")
	wait(hook, "firing", "pipeline pg is not running (paused)")
	cli(t, env, 0, "pipelines", "resume", "pg")
	wait(hook, "resolved", "pipeline pg is not running (paused)")

	// a value changed at the destination behind cdcd's back: verify finds
	// it and the alert fires; put back, the next verify resolves it
	dst, err := pgx.Connect(ctx, dstDSN)
	require.NoError(t, err)
	defer dst.Close(ctx)
	require.Eventually(t, func() bool { return strings.Contains(cli(t, env, 0, "pipelines", "list"), "0s (caught up)") }, 30*time.Second, 100*time.Millisecond)
	var v3 int
	require.NoError(t, src.QueryRow(ctx, `SELECT v FROM t WHERE id = 3`).Scan(&v3))
	_, err = dst.Exec(ctx, `UPDATE replica.t SET v = -1 WHERE id = 3`)
	require.NoError(t, err)
	require.Contains(t, cli(t, env, 1, "pipelines", "verify", "pg"), "public.t: DIFFERENT: 0 missing, 0 extra, 1 different")
	wait(hook, "firing", "verify found 1 rows of pipeline pg that differ from the source")
	_, err = dst.Exec(ctx, `UPDATE replica.t SET v = $1 WHERE id = 3`, v3)
	require.NoError(t, err)
	cli(t, env, 0, "pipelines", "verify", "pg")
	wait(hook, "resolved", "verify found 1 rows of pipeline pg that differ from the source")

	// a pipeline that fails (its table does not exist) and one that retries
	// (nothing listens on its port); deleted, they resolve
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(fmt.Sprintf(`
pipelines:
  - name: broken
    source: {type: postgres, config: {dsn: %q, tables: [public.missing]}}
    sink: {type: discard}
  - name: flaky
    source: {type: postgres, config: {dsn: "postgres://cdcd@127.0.0.1:%d/app?connect_timeout=1", tables: [public.t], keep_slot_on_delete: true}}
    sink: {type: discard}
`, srcDSN, testenv.FreePort(t))), 0o600))
	cli(t, env, 0, "pipelines", "apply", "-f", bad)
	wait(slack, "firing", "pipeline broken is failed")
	wait(hook, "firing", "pipeline flaky keeps failing and retrying")
	cli(t, env, 0, "pipelines", "delete", "broken")
	cli(t, env, 0, "pipelines", "delete", "flaky")
	wait(slack, "resolved", "pipeline broken is failed")
	wait(hook, "resolved", "pipeline flaky keeps failing and retrying")

	// once each: no duplicates
	for _, want := range []string{"behind its source", "not running (paused)", "keeps failing and retrying", "retains", "verify found"} {
		require.Equal(t, 1, hook.count("firing", want), "fired once: %s", want)
		require.Equal(t, 1, hook.count("resolved", want), "resolved once: %s", want)
	}
	history := cli(t, env, 0, "alerts", "history")
	require.Contains(t, history, "delivered (2 attempts)", "the refused delivery was retried:\n%s", history)
	require.Contains(t, history, "chat")
	require.Contains(t, cli(t, env, 1, "connections", "delete", "hook"), "alert channel of rules")
	s.stop(t)
}
