package discard

import (
	"context"
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestCountsAndDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(sinks.Deps{Pipeline: "p", Metrics: reg})
	ctx := context.Background()
	require.NoError(t, s.Open(ctx))
	b := schema.Batch{Changes: []schema.Change{{Op: schema.OpInsert}, {Op: schema.OpDelete}}}
	require.NoError(t, s.Write(ctx, &b))
	require.Equal(t, 2.0, testutil.ToFloat64(s.metric.WithLabelValues("p")))
	require.NoError(t, s.Close(ctx))
}
