package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

func TestHideValues(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1<<18) // 1 MiB
	b := &schema.Batch{Changes: []schema.Change{{
		Key:   schema.Row{{Name: "id", Value: schema.Int(12345678901)}},
		After: schema.Row{{Name: "s", Value: schema.String("MARKER-secret-value")}, {Name: "b", Value: schema.Bytes(big)}, {Name: "x", Value: schema.String("ok")}},
	}}}
	for _, tc := range []struct{ name, msg string }{
		{"text", `invalid input syntax for type integer: "MARKER-secret-value"`},
		{"key", "duplicate key 12345678901"},
		{"hex", `value \x` + hex.EncodeToString(big) + ` too long`},
		{"base64", `{"b":"` + base64.StdEncoding.EncodeToString(big) + `"}`},
		{"raw cut by the message's end", "row: " + string(big[:100])},
		{"go syntax", fmt.Sprintf("unable to encode %#v into binary format", "MARKER-secret-value")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := valueSafe(fmt.Errorf("write: %w", errors.New(tc.msg)), b)
			require.NotContains(t, err.Error(), "MARKER")
			require.NotContains(t, err.Error(), "12345678901")
			require.NotContains(t, err.Error(), "deadbeefdeadbeef")
			require.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString(big[:12]))
			require.NotContains(t, err.Error(), string(big[:8]))
			require.LessOrEqual(t, len(err.Error()), maxErrorText+20)
			require.Contains(t, err.Error(), "write: ")
		})
	}
	// a long message keeps its head and its cause
	err := valueSafe(fmt.Errorf("write t: %w", fmt.Errorf("query %s: %w", strings.Repeat("x", 3*maxErrorText), errors.New("the cause"))), b)
	require.True(t, strings.HasPrefix(err.Error(), "write t: query xxx"), err.Error()[:40])
	require.True(t, strings.HasSuffix(err.Error(), "xxx: the cause"))
	require.Contains(t, err.Error(), " … (cut) … ")
	require.LessOrEqual(t, len(err.Error()), maxErrorText+20)
	// short values and the error chain stay
	err = valueSafe(fmt.Errorf("no: %w", errInjected), b)
	require.ErrorIs(t, err, errInjected)
	require.Equal(t, "no: injected fault", err.Error())
}

// The runner's error (what the supervisor logs and stores) carries no value
// of the batch the sink failed on.
func TestRunnerSinkErrorCarriesNoValue(t *testing.T) {
	t.Parallel()
	f := &faults{rng: rand.New(rand.NewPCG(1, 1)), rate: 0}
	b := newBundle(t, 1, 5, f)
	cfg := b.config(t, b.acquire(t))
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Sink = &quotingSink{memSink: b.sink}
	err := b.runUntilDone(t, cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), hiddenValue)
	require.NotContains(t, err.Error(), "ROWVALUE-")
	require.NotContains(t, logs.String(), "ROWVALUE-")
}

// quotingSink fails every write with an error that quotes the batch's rows,
// as careless drivers do.
type quotingSink struct{ *memSink }

func (q *quotingSink) Write(ctx context.Context, b *schema.Batch) error {
	var s strings.Builder
	for i := range b.Changes {
		b.Changes[i].After = append(b.Changes[i].After, schema.Field{Name: "w", Value: schema.String(fmt.Sprintf("ROWVALUE-%d", i))})
		fmt.Fprintf(&s, "failing row contains (%s) ", b.Changes[i].After.AppendJSON(nil))
	}
	return errors.New(s.String())
}
