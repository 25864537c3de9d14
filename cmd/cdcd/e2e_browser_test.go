package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/chromedp/chromedp"
	mysqlclient "github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// browser drives the web UI in a real Chromium (Debian's package, headless,
// its own profile), saving a screenshot of each step.
type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shots  string
	prefix string
	n      int
}

func newBrowser(t *testing.T, base string, width, height int) *browser {
	t.Helper()
	exe := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(width, height), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	shots := os.Getenv("CDCD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	b := &browser{t: t, ctx: ctx, base: base, shots: shots}
	// the first run starts the browser, on a context without a deadline
	require.NoError(t, chromedp.Do(ctx))
	if width < 500 {
		// a headless window is at least 500 px wide: a phone is emulated
		b.run(chromedp.EmulateViewport(int64(width), int64(height)))
		b.prefix = "phone-"
	}
	b.run(chromedp.Navigate(base + "/"))
	return b
}

func (b *browser) run(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail("%v", err)
	}
}

// scheme switches the page's prefers-color-scheme ("dark" or "light").
func (b *browser) scheme(v string) {
	b.t.Helper()
	b.run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
		return err
	}))
}

// luminance is the relative luminance (WCAG) of the computed background of
// the element sel matches, its own or the first an ancestor paints.
func (b *browser) luminance(sel string) float64 {
	b.t.Helper()
	return eval[float64](b, fmt.Sprintf(`(() => {
		for (let e = document.querySelector(%q); e; e = e.parentElement) {
			const m = getComputedStyle(e).backgroundColor.match(/[\d.]+/g).map(Number);
			if (m.length === 4 && m[3] === 0) continue;
			const c = m.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
			return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
		}
		return 1;
	})()`, sel))
}

// eval evaluates a JavaScript expression and returns its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// fail saves a screenshot and fails with the page's text.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	b.shot("failure")
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	b.t.Fatalf("%s\npage text:\n%s", fmt.Sprintf(format, args...), text)
}

// evalAwait evaluates an expression whose value is a promise and returns
// what it resolves to.
func evalAwait[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// accessible runs axe-core (the npm package the UI's toolchain installs)
// on the page as it is and fails on every WCAG 2 A and AA violation, each
// with the elements it found it on.
func (b *browser) accessible(page string) {
	b.t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "ui", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		if testenv.InCI() {
			b.t.Fatalf("axe-core is not installed (scripts/test runs npm ci in ui/): %v", err)
		}
		b.t.Logf("accessibility of %s not checked: %v (run npm ci in ui/)", page, err)
		return
	}
	eval[chromedp.Void](b, string(src))
	found := evalAwait[[]string](b, `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
		.then(r => r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ': ' + v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(', ')))`)
	if len(found) > 0 {
		b.shot("inaccessible-" + page)
	}
	require.Empty(b.t, found, "accessibility of %s", page)
}

// shot saves a full-page screenshot named after the step.
func (b *browser) shot(step string) {
	b.n++
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", step, err)
		return
	}
	name := filepath.Join(b.shots, fmt.Sprintf("%s%02d-%s.png", b.prefix, b.n, step))
	if err := os.WriteFile(name, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", step, err)
	}
}

// until waits for a JavaScript expression to be true.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		b.fail("waiting until %s: %v", what, err)
	}
}

// shows waits until the element sel shows text.
func (b *browser) shows(sel, text string) {
	b.t.Helper()
	b.until(fmt.Sprintf("%s shows %q", sel, text),
		fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.innerText.includes(%q); })()`, sel, text))
}

// absent waits until no element matches sel.
func (b *browser) absent(sel string) {
	b.t.Helper()
	b.until(sel+" is gone", fmt.Sprintf(`document.querySelector(%q) === null`, sel))
}

// count returns how many elements match sel now.
func (b *browser) count(sel string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// fill sets an input's, textarea's or select's value as typing or choosing
// would: through the native setter, then the input and change events the
// page listens to.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		const proto = e instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : e instanceof HTMLSelectElement ? HTMLSelectElement.prototype : HTMLInputElement.prototype;
		Object.getOwnPropertyDescriptor(proto, 'value').set.call(e, %q);
		e.dispatchEvent(new Event('input', {bubbles: true}));
		e.dispatchEvent(new Event('change', {bubbles: true}));
	})()`, sel, value)))
}

// click clicks the first visible element matching sel (CSS), or the
// button whose text is text when sel is empty.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.run(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

func (b *browser) clickButton(text string) {
	b.t.Helper()
	b.run(chromedp.Click(chromedp.Search(fmt.Sprintf(`//button[normalize-space()=%q] | //a[normalize-space()=%q]`, text, text)), chromedp.NodeVisible))
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base + path))
}

// saveConnection fills the new-connection form (fields: the config's keys
// to their values, in order; role empty: the type's first) and saves it.
func (b *browser) saveConnection(name, typ, role string, fields ...[2]string) {
	b.t.Helper()
	b.open("/connections/new")
	b.fill("#f-name", name)
	b.fill("#f-type", typ)
	if role != "" {
		b.fill("#f-role", role)
	}
	for _, f := range fields {
		b.fill("#f-"+f[0], f[1])
	}
	b.clickButton("Save")
	b.until("saved", fmt.Sprintf(`location.pathname === '/connections/%s'`, name))
}

// apiCall makes one API request with a token and returns the status and body.
func apiCall(t *testing.T, base, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func newToken(t *testing.T, base, admin, name, role string) string {
	t.Helper()
	code, body := apiCall(t, base, admin, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": role})
	require.Equal(t, http.StatusCreated, code, "%s", body)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal(body, &tok))
	return tok.Token
}

// TestBrowserWalkThrough runs the web UI in Chromium against `cdcd serve`
// and private Postgres servers, as a new user would: sign in; create a source
// and a destination connection in forms built from the server's field
// definitions and test both (and a failing one, whose remedy is shown);
// watch a pipeline snapshot and stream in the per-table view, with an email
// column hashed at the destination; see a change move the counters; approve
// a held rename with its DDL shown, and the destination follows; pause,
// resume and delete. A viewer's token sees no edit controls and the API
// refuses its writes. Screenshots of each step go to $CDCD_SCREENSHOTS.
func TestBrowserWalkThrough(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	srcDSN := pg.CreateDatabase(t, "shop")
	dstDSN := pg.CreateDatabase(t, "wh")
	ctx := context.Background()
	src, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer src.Close()
	dst, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dst.Close()
	exec := func(q string) {
		t.Helper()
		_, err := src.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	exec(`CREATE TABLE users (id int8 PRIMARY KEY, email text, name text, phone text)`)
	exec(`CREATE TABLE orders (id int8 PRIMARY KEY, user_id int8, total numeric(10,2))`)
	exec(`INSERT INTO users SELECT g, 'u' || g || '@example.com', 'user ' || g, '+1555' || g FROM generate_series(1, 50) g`)
	exec(`INSERT INTO orders SELECT g, g % 50 + 1, g * 1.25 FROM generate_series(1, 120) g`)
	exec(`CREATE ROLE weak LOGIN`) // no REPLICATION: its connection test fails with the remedy
	weakDSN := strings.Replace(srcDSN, "postgres://postgres@", "postgres://weak@", 1)

	dir := t.TempDir()
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	// the first admin token, made in open mode (local, no token yet)
	admin := newToken(t, s.url, "", "alice", "admin")
	viewer := newToken(t, s.url, admin, "victor", "viewer")

	b := newBrowser(t, s.url, 1280, 900)
	b.shows("main", "API token")
	b.accessible("sign-in")
	b.shot("sign-in")
	b.run(chromedp.SendKeys(chromedp.CSS("#token"), admin), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.shows("[data-testid=who]", "alice · admin")

	// a source connection, through the form for a postgres source
	b.click(`a[href="/connections"]`)
	b.shows("main", "No connections yet")
	b.click(`a[href="/connections/new"]`)
	b.fill("#f-name", "shop")
	b.fill("#f-type", "postgres")
	b.shows("#f-role", "source")
	b.fill("#f-dsn", srcDSN) // the tables are the pipelines' to choose
	b.fill("#f-heartbeat_interval", "1s")
	b.fill("#f-status_interval", "200ms")
	b.accessible("connection-form")
	b.shot("connection-form")
	b.clickButton("Save")
	b.until("the form shows the saved connection", `location.pathname === '/connections/shop' && !!document.evaluate("//button[normalize-space()='Test']", document, null, 9, null).singleNodeValue`)
	b.clickButton("Test")
	b.shows("[data-testid=test-result]", "Connection test passed")
	b.shot("connection-test-passed")

	// a connection whose role cannot replicate: the test says what to run
	b.saveConnection("weak", "postgres", "", [2]string{"dsn", weakDSN}, [2]string{"tables", "public.users"})
	b.clickButton("Test")
	b.shows("[data-testid=test-result]", "Connection test failed")
	b.shows("[data-testid=test-result]", "ALTER ROLE <user> WITH REPLICATION")
	b.shot("connection-test-remedy")

	// a form problem is shown next to its field, in the user's terms
	b.open("/connections/new")
	b.fill("#f-name", "bad")
	b.fill("#f-type", "postgres")
	b.fill("#f-role", "destination")
	b.fill("#f-dsn", "postgres://x@127.0.0.1:1/x")
	b.fill("#f-delete_mode", "sometimes")
	b.clickButton("Save")
	b.shows(".field-problems", `must be soft or hard, got "sometimes"`)
	b.shot("connection-form-problem")

	// the destination, tested in the role it fits
	b.saveConnection("wh", "postgres", "destination", [2]string{"dsn", dstDSN}, [2]string{"schema", "wh"})
	b.clickButton("Test")
	b.shows("[data-testid=test-result]", "Connection test passed")
	b.open("/connections")
	b.shows("main", "weak")
	require.Equal(t, 3, b.count("[data-connection]"))
	b.shot("connections")

	// the wizard: source, two tables from the live catalog, a column left
	// out and the email hashed, the preview, the destination's names, the
	// document, validation, creation
	b.open("/")
	b.clickButton("New pipeline")
	b.click(`input[name=source][value=shop]`)
	b.shot("wizard-source")
	b.clickButton("Next")
	b.shows(`[data-catalog-table="public.users"]`, "users")
	b.click(`[data-catalog-table="public.users"] input[type=checkbox]`)
	b.click(`[data-catalog-table="public.orders"] input[type=checkbox]`)
	b.accessible("wizard-tables")
	b.shot("wizard-tables")
	b.clickButton("Next")
	b.click(`[data-columns="public.users"] [data-column="phone"] input[type=checkbox]`)
	b.fill(`[data-columns="public.users"] [data-column="email"] select`, "hash")
	b.clickButton("Generate")
	b.accessible("wizard-columns")
	b.shot("wizard-columns")
	b.clickButton("Next")
	b.shows(`[data-testid=preview-after]`, "user 1")
	afterText := eval[string](b, `document.querySelector('[data-testid=preview-after]').innerText`)
	require.NotContains(t, afterText, "@example.com", "the preview shows the email hashed")
	require.NotContains(t, afterText, "phone", "the left-out column is not written")
	require.Contains(t, eval[string](b, `document.querySelector('main').innerText`), "u1@example.com", "the preview shows the source's rows too")
	b.accessible("wizard-preview")
	b.shot("wizard-preview")
	b.clickButton("Next")
	b.fill("#p-name", "shop")
	b.fill("#p-dest", "wh")
	b.shows(`[data-plan-table="public.users"]`, "wh.users")
	b.shows(`[data-plan-table="public.orders"]`, "wh.orders")
	// looked up in the destination's catalog: neither exists yet
	b.shows(`[data-plan-table="public.users"] [data-testid=dest-new]`, "new table")
	b.shows(`[data-plan-table="public.orders"] [data-testid=dest-new]`, "new table")
	b.accessible("wizard-destination")
	b.shot("wizard-destination")
	b.clickButton("Next")
	b.shows(`[data-testid=yaml]`, "method: hash")
	// the document as shown is one the API takes
	yamlDoc := eval[string](b, `document.querySelector('[data-testid=yaml]').innerText`)
	req, err := http.NewRequest("POST", s.url+"/api/v1/plan", strings.NewReader(yamlDoc))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	planBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", planBody)
	var planned struct{ OK bool }
	require.NoError(t, json.Unmarshal(planBody, &planned))
	require.True(t, planned.OK, "the review's YAML plans clean:\n%s\n%s", yamlDoc, planBody)
	b.clickButton("Validate")
	b.shows(`[data-testid=validation]`, "Everything checks out")
	b.shot("wizard-review")
	b.clickButton("Create")
	b.until("on the new pipeline's page", `location.pathname === '/pipelines/shop'`)

	b.shows(`[data-table="public.users"]`, "50 rows")
	b.shows(`[data-table="public.orders"]`, "120 rows")
	b.shows(`[data-table="public.users"]`, "streaming")
	b.shot("pipeline-streaming")
	// the dark scheme: dark panels, light text, and the same contrast checks
	require.Greater(t, b.luminance("main"), 0.8, "light scheme by default")
	b.scheme("dark")
	require.Less(t, b.luminance(`[data-table="public.users"]`), 0.05, "the dark scheme paints the tables dark")
	b.accessible("pipeline-dark")
	b.shot("pipeline-dark")
	b.scheme("light")
	var email string
	require.NoError(t, dst.QueryRow(ctx, `SELECT email FROM wh.users WHERE id = 1`).Scan(&email))
	require.NotEqual(t, "u1@example.com", email, "the email is hashed at the destination")
	require.NotEmpty(t, email)
	var phoneCols int
	require.NoError(t, dst.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'wh' AND table_name = 'users' AND column_name = 'phone'`).Scan(&phoneCols))
	require.Zero(t, phoneCols, "the column left out is not at the destination")

	// a change at the source moves the counters
	before := eval[string](b, `document.querySelector('[data-testid=written]').innerText`)
	exec(`UPDATE orders SET total = total + 1 WHERE id <= 30`)
	b.until("the written counter moves", fmt.Sprintf(`document.querySelector('[data-testid=written]').innerText !== %q`, before))
	b.shows(`[data-table="public.orders"]`, "30") // updates

	// a rename is held; the card shows the new shape and the destination DDL
	exec(`ALTER TABLE users RENAME COLUMN name TO full_name`)
	exec(`UPDATE users SET full_name = 'renamed ' || id WHERE id <= 5`)
	b.shows(`[data-held]`, "renamed to full_name")
	b.shows(`[data-held] .ddl`, `ALTER TABLE "wh"."users" RENAME COLUMN "name" TO "full_name"`)
	b.shows(`[data-table="public.users"]`, "held")
	b.accessible("schema-change-held")
	b.shot("schema-change-held")
	b.click(`[data-held] button.primary`)
	b.absent(`[data-held]`)
	count := func(q string) int {
		var n int
		if err := dst.QueryRow(ctx, q).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM wh.users WHERE full_name LIKE 'renamed %'`) == 5 },
		60*time.Second, 100*time.Millisecond, "the approved rename never reached the destination: %s", s.log)

	// edit: a table added (snapshotted while the others stream) and the
	// mask changed, which asks what happens to the rows already written
	exec(`CREATE TABLE notes (id int8 PRIMARY KEY, body text)`)
	exec(`INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 25) g`)
	b.clickButton("Edit")
	b.shows(`[data-testid=edit-tables]`, "public.orders")
	b.fill("#add-table", "public.notes")
	b.clickButton("Add")
	b.shows(`[data-testid=edit-tables]`, "public.notes")
	doc := eval[string](b, `document.querySelector('textarea').value`)
	require.Contains(t, doc, `"method": "hash"`)
	b.fill("textarea", strings.Replace(doc, `"method": "hash"`, `"method": "redact"`, 1))
	b.shows(`[data-testid=transform-change]`, "The transforms changed")
	require.True(t, eval[bool](b, `[...document.querySelectorAll('button.primary')].find(e => e.innerText === 'Save').disabled`), "no save before the choice")
	b.click(`input[name=tc][value=keep_written]`)
	b.clickButton("Validate")
	b.shows(`[data-testid=edit-validation]`, "Everything checks out")
	b.shot("edit")
	b.clickButton("Save")
	b.until("back on the pipeline's page", `location.pathname === '/pipelines/shop'`)
	b.shows(`[data-table="public.notes"]`, "25 rows")
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM wh.notes`) == 25 }, 60*time.Second, 100*time.Millisecond, "the added table never arrived: %s", s.log)

	// a row at the destination the source never had (a restore, a hand edit):
	// the table's resync reads it again while the others stream and removes it
	_, err = dst.Exec(ctx, `INSERT INTO wh.notes (id, body, _cdc_version) VALUES (-1, 'ghost', '\x00'::bytea)`)
	require.NoError(t, err)
	b.click(`[data-table="public.notes"] button`)
	b.run(chromedp.WaitVisible(chromedp.CSS(`dialog[open]`)))
	b.shows(`dialog[open]`, "read again while the other tables keep streaming")
	b.shot("resync-table-confirm")
	b.run(chromedp.Click(chromedp.CSS(`dialog[open] button.danger`), chromedp.NodeVisible))
	b.shows(`[data-testid=resynced]`, "Resyncing public.notes while the other tables stream")
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM wh.notes WHERE id = -1 AND _cdc_deleted`) == 1 && count(`SELECT count(*) FROM wh.notes WHERE NOT _cdc_deleted`) == 25
	}, 60*time.Second, 100*time.Millisecond, "the resync never removed the row the source does not have: %s", s.log)
	b.shows(`[data-table="public.notes"]`, "streaming")

	// verify: a row changed at the destination behind cdcd's back is found,
	// and the repair resyncs that table
	_, err = dst.Exec(ctx, `UPDATE wh.notes SET body = 'tampered' WHERE id = 3`)
	require.NoError(t, err)
	b.clickButton("Verify now")
	b.shows(`[data-testid="verify-public.notes"]`, "different: 3")
	b.shows(`[data-testid=verify-summary]`, "The replica differs from the source")
	b.accessible("verify")
	b.shot("verify-different")
	b.clickButton("Repair public.notes")
	b.shows(`[data-testid=verify-summary]`, "Repair: resyncing public.notes")
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM wh.notes WHERE id = 3 AND body = 'note 3'`) == 1 },
		60*time.Second, 100*time.Millisecond, "the repair never restored the row: %s", s.log)

	// a viewer sees no edit controls, and the API refuses its writes
	b.clickButton("Sign out")
	b.run(chromedp.SendKeys(chromedp.CSS("#token"), viewer), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.shows("[data-testid=who]", "victor · viewer")
	b.open("/")
	b.shows(`[data-pipeline="shop"]`, "shop")
	require.Zero(t, b.count(`[data-pipeline="shop"] button`), "no pause or resume for a viewer")
	b.accessible("list")
	b.shot("viewer-list")
	b.open("/connections")
	b.shows("main", "weak")
	require.Zero(t, b.count(`a[href="/connections/new"]`), "no new connection for a viewer")
	b.open("/")
	b.shows(`[data-pipeline="shop"]`, "shop")
	require.Zero(t, b.count(`a[href="/pipelines/new"]`), "no new pipeline for a viewer")
	b.open("/pipelines/shop")
	b.shows(`[data-table="public.users"]`, "streaming")
	require.Zero(t, b.count(`button.danger`), "no delete for a viewer")
	require.Zero(t, b.count(`a[href="/pipelines/shop/edit"]`), "no edit for a viewer")
	code, body := apiCall(t, s.url, viewer, "POST", "/api/v1/pipelines/shop/pause", nil)
	require.Equal(t, http.StatusForbidden, code, "%s", body)

	// back as the admin: pause, resume, delete
	b.clickButton("Sign out")
	b.run(chromedp.SendKeys(chromedp.CSS("#token"), admin), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.shows("[data-testid=who]", "alice · admin")
	b.open("/pipelines/shop")
	b.clickButton("Pause")
	b.shows("h1 + .state", "paused")
	b.clickButton("Resume")
	b.shows("h1 + .state", "streaming")
	exec(`INSERT INTO orders VALUES (121, 1, 9.99)`)
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM wh.orders WHERE id = 121`) == 1 },
		60*time.Second, 100*time.Millisecond, "nothing flowed after resume: %s", s.log)
	// the charts draw the pipeline's points (one every 10 s): changes written
	b.until("the throughput chart has a line", `[...document.querySelectorAll('figure.chart path.s2')].some(p => (p.getAttribute('d') || '').includes('L'))`)
	b.shot("pipeline-charts")

	// at a phone's width the pages reflow; the list and the pipeline stay usable
	phone := newBrowser(t, s.url, 390, 844)
	phone.run(chromedp.SendKeys(chromedp.CSS("#token"), admin), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	phone.shows(`[data-pipeline="shop"]`, "streaming")
	phone.shot("list")
	phone.click(`a[href="/pipelines/shop"]`)
	phone.shows(`[data-table="public.orders"]`, "streaming")
	require.LessOrEqual(t, eval[int](phone, `document.querySelector('main').scrollWidth`), 390, "the pipeline page fits a phone's width")
	phone.shot("pipeline")

	b.clickButton("Delete…")
	b.run(chromedp.WaitVisible(chromedp.CSS(`dialog[open]`)))
	b.shot("delete-confirm")
	b.run(chromedp.Click(chromedp.CSS(`dialog[open] button.danger`), chromedp.NodeVisible))
	b.until("back on the list", `location.pathname === '/'`)
	b.shows("main", "No pipelines yet")
	code, _ = apiCall(t, s.url, admin, "GET", "/api/v1/pipelines/shop", nil)
	require.Equal(t, http.StatusNotFound, code)
	var slots int
	require.NoError(t, src.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots))
	require.Zero(t, slots, "deleting dropped the slot")
	t.Logf("screenshots in %s (%s)", b.shots, strconv.Itoa(b.n))
}

// TestBrowserMariaDBWizard: a MariaDB source through the same forms and
// wizard, in open mode (no token yet, a local browser): its connection tested
// as a source, its catalog, the preview with an email hashed, creation, and
// the destination holding the rows.
func TestBrowserMariaDBWizard(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t)
	conn, err := mysqlclient.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	defer conn.Close()
	for _, q := range []string{
		"CREATE DATABASE app CHARACTER SET utf8mb4", "USE app",
		"CREATE TABLE customers (id bigint PRIMARY KEY, email varchar(100), name char(20))",
		"CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total decimal(10,2))",
		"INSERT INTO customers SELECT seq, CONCAT('c', seq, '@example.com'), CONCAT('name ', seq) FROM seq_1_to_40",
		"INSERT INTO orders SELECT seq, seq % 40 + 1, seq * 2.5 FROM seq_1_to_90",
	} {
		_, err := conn.Execute(q)
		require.NoError(t, err, q)
	}
	pg := testenv.StartPostgres(t)
	dstDSN := pg.CreateDatabase(t, "wh")
	dst, err := pgxpool.New(context.Background(), dstDSN)
	require.NoError(t, err)
	defer dst.Close()
	s := startServer(t, "--data-dir", filepath.Join(t.TempDir(), "data"))

	b := newBrowser(t, s.url, 1280, 900)
	b.shows("[data-testid=who]", "open mode")
	b.saveConnection("maria", "mysql", "", [2]string{"addr", m.Addr()}, [2]string{"user", "root"})
	b.clickButton("Test")
	b.shows("[data-testid=test-result]", "Connection test passed")
	b.saveConnection("wh", "postgres", "destination", [2]string{"dsn", dstDSN}, [2]string{"schema", "wh"})

	b.open("/pipelines/new")
	b.click(`input[name=source][value=maria]`)
	b.clickButton("Next")
	b.shows(`[data-catalog-table="app.customers"]`, "customers")
	b.click(`[data-catalog-table="app.customers"] input[type=checkbox]`)
	b.click(`[data-catalog-table="app.orders"] input[type=checkbox]`)
	b.clickButton("Next")
	b.fill(`[data-columns="app.customers"] [data-column="email"] select`, "hash")
	b.clickButton("Generate")
	b.clickButton("Next")
	b.shows(`[data-testid=preview-after]`, "name 1")
	require.NotContains(t, eval[string](b, `document.querySelector('[data-testid=preview-after]').innerText`), "@example.com")
	b.shot("mariadb-preview")
	b.clickButton("Next")
	b.fill("#p-name", "maria")
	b.fill("#p-dest", "wh")
	b.shows(`[data-plan-table="app.customers"]`, "wh.customers")
	b.clickButton("Next")
	b.clickButton("Validate")
	b.shows(`[data-testid=validation]`, "Everything checks out")
	b.clickButton("Create")
	b.until("on the new pipeline's page", `location.pathname === '/pipelines/maria'`)
	b.shows(`[data-table="app.customers"]`, "40 rows")
	b.shows(`[data-table="app.orders"]`, "90 rows")
	b.shot("mariadb-pipeline")
	var n int
	require.Eventually(t, func() bool {
		return dst.QueryRow(context.Background(), `SELECT count(*) FROM wh.customers WHERE email NOT LIKE '%@example.com'`).Scan(&n) == nil && n == 40
	}, 60*time.Second, 100*time.Millisecond, "the customers, emails hashed: %s", s.log)
}

// TestBrowserManyPipelines: the list with 200 pipelines renders every row and
// filters them as the user types; the time to the first full render and the
// list request are logged (measured, not asserted: a loaded CI machine is no
// reference).
func TestBrowserManyPipelines(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", filepath.Join(t.TempDir(), "data"))
	const n = 200
	for i := range n {
		code, body := apiCall(t, s.url, "", "PUT", fmt.Sprintf("/api/v1/pipelines/p%03d", i), map[string]any{
			"paused": true, "source": map[string]any{"type": "datagen", "config": map[string]any{"tables": 2, "snapshot_rows": 10}},
			"sink": map[string]any{"type": "discard"}})
		require.Equal(t, http.StatusCreated, code, "%s", body)
	}
	start := time.Now()
	code, body := apiCall(t, s.url, "", "GET", "/api/v1/pipelines", nil)
	require.Equal(t, http.StatusOK, code)
	t.Logf("GET /api/v1/pipelines with %d pipelines: %d bytes in %s", n, len(body), time.Since(start))

	b := newBrowser(t, s.url, 1280, 900)
	start = time.Now()
	b.until("every row", fmt.Sprintf(`document.querySelectorAll('[data-pipeline]').length === %d`, n))
	t.Logf("the list showed %d pipelines %s after the page loaded", n, time.Since(start))
	b.fill(`input[type=search]`, "p01")
	b.until("the filtered rows", `document.querySelectorAll('[data-pipeline]').length === 10`)
	b.fill(`input[type=search]`, "")
	b.until("every row again", fmt.Sprintf(`document.querySelectorAll('[data-pipeline]').length === %d`, n))
	// the page's long tasks (a render blocking input) while the list polls
	longest := evalAwait[float64](b, `new Promise(ok => { let max = 0; new PerformanceObserver(l => { for (const e of l.getEntries()) max = Math.max(max, e.duration) }).observe({type: 'longtask', buffered: false}); setTimeout(() => ok(max), 4500) })`)
	t.Logf("the longest task over two polls of %d rows: %.0f ms (0: none over 50 ms)", n, longest)
	b.shot("many-pipelines")

	// bulk: two rows selected, one click resumes both
	b.click(`[data-pipeline="p000"] input[type=checkbox]`)
	b.click(`[data-pipeline="p001"] input[type=checkbox]`)
	b.clickButton("Resume selected")
	paused := func(name string) bool {
		_, body := apiCall(t, s.url, "", "GET", "/api/v1/pipelines/"+name, nil)
		var v struct{ Paused bool }
		require.NoError(t, json.Unmarshal(body, &v))
		return v.Paused
	}
	require.Eventually(t, func() bool { return !paused("p000") && !paused("p001") }, 30*time.Second, 50*time.Millisecond)
	require.True(t, paused("p002"))
}

// TestBrowserAlerts: an alert channel made in the connection form, a rule
// made in the alerts page, a test notification sent from it; a pipeline that
// fails fires the rule: the list shows the banner and the channel gets it.
func TestBrowserAlerts(t *testing.T) {
	t.Parallel()
	hook := newReceiver(t, func(*http.Request, []byte) error { return nil })
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "empty")
	s := startServer(t, "--data-dir", filepath.Join(t.TempDir(), "data"))
	b := newBrowser(t, s.url, 1280, 900)
	b.shows("[data-testid=who]", "open mode")
	b.saveConnection("hook", "webhook", "", [2]string{"url", hook.srv.URL}, [2]string{"secret", "a-webhook-secret-of-some-length"})

	b.click(`a[href="/alerts"]`)
	b.shows("main", "Nothing fires")
	b.fill("#eval-interval", "1s")
	b.clickButton("Add a rule")
	b.fill("#r0-name", "broken")
	b.fill("#r0-cond", "pipeline_failed")
	b.fill("#r0-for", "") // at once
	b.clickButton("Save rules")
	b.shows("main", "Saved: the rules are in force")
	code, body := apiCall(t, s.url, "", "GET", "/api/v1/alerts", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"channels": [`+"\n"+`        "hook"`, "%s", body)
	b.clickButton("Send a test")
	b.shows(`[data-channel="hook"]`, "test notification sent")
	require.Eventually(t, func() bool { return hook.has("test", "") }, 10*time.Second, 50*time.Millisecond)
	b.accessible("alerts")
	b.shot("alerts")

	// a pipeline whose table does not exist fails at once: the rule fires
	code, body = apiCall(t, s.url, "", "PUT", "/api/v1/pipelines/broken", map[string]any{
		"source": map[string]any{"type": "postgres", "config": map[string]any{"dsn": dsn, "tables": []string{"public.missing"}}},
		"sink":   map[string]any{"type": "discard"}})
	require.Equal(t, http.StatusCreated, code, "%s", body)
	b.open("/")
	b.shows(`[data-testid=firing]`, "broken on broken")
	require.Eventually(t, func() bool { return hook.has("firing", "broken") }, 30*time.Second, 100*time.Millisecond)
	b.shot("alert-firing")
}
