// Package deploy holds what operators install next to cdcd: Prometheus alert
// rules, a Grafana dashboard, a systemd unit and a Dockerfile. Its tests
// check the rules with promtool; cmd/cdcd's TestLagThroughServe checks that
// every metric they and the dashboard query exists on a live server.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestAlertRules: the rules load, and each fires and resolves on the series
// of its unit test (prometheus/cdcd-alerts.test.yml).
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := testenv.Promtool(t)
	for _, args := range [][]string{{"check", "rules", "cdcd-alerts.yml"}, {"test", "rules", "cdcd-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
	}
}

// TestDashboard: the dashboard is Grafana JSON whose panels all query
// something, filtered by the pipeline variable.
func TestDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("grafana/cdcd-dashboard.json")
	require.NoError(t, err)
	var d struct {
		UID    string
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.UID)
	n := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		n++
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			require.Contains(t, tg.Expr, `pipeline=~"$pipeline"`, "%s: %s", p.Title, tg.Expr)
		}
	}
	require.GreaterOrEqual(t, n, 15)
}
