package alerts

import (
	"fmt"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
)

// observed is what a rule saw on a pipeline when its condition holds.
type observed struct {
	value, summary, detail string
}

// check evaluates one rule's condition on one pipeline; last holds each
// pipeline's committed position at the previous evaluation.
// verified holds each pipeline's latest verify (absent: never verified).
func check(r config.AlertRule, st *pipeline.Status, last map[string]offsets.Position, verified map[string]*Verified) (observed, bool) {
	p := &st.Progress
	name := st.Name
	switch r.Condition {
	case "lag_seconds":
		if !st.Running || p.LagSeconds == nil || *p.LagSeconds <= r.Threshold {
			return observed{}, false
		}
		lag := time.Duration(*p.LagSeconds * float64(time.Second)).Round(time.Second)
		return observed{value: lag.String(),
			summary: fmt.Sprintf("pipeline %s is %s behind its source", name, lag),
			detail: fmt.Sprintf("The oldest change read from the source and not yet durable at the sink is %s old (threshold %s). "+
				"Check the sink (cdcd_sink_write_seconds), back-pressure (cdcd_stage_stalls_total) and `cdcd pipelines events %s`.",
				lag, time.Duration(r.Threshold*float64(time.Second)), name)}, true
	case "retained_wal_bytes":
		v, ok := number(detail(st, "retained_wal_bytes"))
		if !ok || v <= r.Threshold {
			return observed{}, false
		}
		return observed{value: bytes(v),
			summary: fmt.Sprintf("the replication slot of pipeline %s retains %s of WAL", name, bytes(v)),
			detail: fmt.Sprintf("Postgres keeps WAL until cdcd confirms it (threshold %s). A stopped or slow pipeline lets it grow until the disk fills: "+
				"resume it, make the sink faster, or delete the pipeline to drop its slot.", bytes(r.Threshold))}, true
	case "wal_status":
		s, _ := detail(st, "wal_status").(string)
		if s == "" || s == "reserved" {
			return observed{}, false
		}
		return observed{value: s,
			summary: fmt.Sprintf("the replication slot of pipeline %s is %s", name, s),
			detail: "wal_status is not reserved: the slot holds more WAL than max_wal_size; past max_slot_wal_keep_size the server removes WAL it needs " +
				"(unreserved), and then the pipeline must be resynced (lost)."}, true
	case "not_advancing":
		if !st.Running {
			if st.State == pipeline.StateFailed || st.State == pipeline.StateNeedsResync {
				return observed{}, false // pipeline_failed says that
			}
			return observed{value: string(st.State),
				summary: fmt.Sprintf("pipeline %s is not running (%s)", name, st.State),
				detail: "Its source position does not advance: a Postgres slot keeps WAL meanwhile. " +
					fmt.Sprintf("Resume it (`cdcd pipelines resume %s`) or delete it.", name)}, true
		}
		prev, seen := last[name]
		if p.CaughtUp || !seen || prev.Compare(p.CommittedPos) != 0 {
			return observed{}, false
		}
		return observed{value: p.CommittedPos.String(),
			summary: fmt.Sprintf("pipeline %s is behind and its position does not advance", name),
			detail:  fmt.Sprintf("Its committed position stayed at %s while the source is ahead: the sink is blocked or the pipeline is stuck. See `cdcd pipelines events %s`.", p.CommittedPos, name)}, true
	case "pipeline_failed":
		if st.State != pipeline.StateFailed && st.State != pipeline.StateNeedsResync {
			return observed{}, false
		}
		return observed{value: string(st.State),
			summary: fmt.Sprintf("pipeline %s is %s", name, st.State),
			detail:  fmt.Sprintf("It stopped and will not retry on its own: %s. docs/runbooks.md says what to do.", oneLine(st.LastError))}, true
	case "schema_change_held":
		if len(p.HeldTables) == 0 {
			return observed{}, false
		}
		return observed{value: strings.Join(p.HeldTables, ", "),
			summary: fmt.Sprintf("pipeline %s holds %d table(s) for a schema-change decision", name, len(p.HeldTables)),
			detail:  fmt.Sprintf("Held: %s. Their changes are kept aside until you decide: `cdcd pipelines schema-changes %s`.", strings.Join(p.HeldTables, ", "), name)}, true
	case "verify_mismatch":
		v := verified[name]
		if v == nil || v.Rows() <= int64(r.Threshold) {
			return observed{}, false
		}
		return observed{value: fmt.Sprintf("%d rows", v.Rows()),
			summary: fmt.Sprintf("verify found %d rows of pipeline %s that differ from the source", v.Rows(), name),
			detail: fmt.Sprintf("The verify of %s found %d missing, %d extra and %d different rows in %s. "+
				"The pipeline page of the web UI (or GET /api/v1/pipelines/%s/verifications) shows sample keys; `cdcd pipelines verify %s --repair` reads those tables again. "+
				"The alert resolves when a verify finds them equal.",
				v.At.UTC().Format(time.RFC3339), v.Missing, v.Extra, v.Different, strings.Join(v.Tables, ", "), name, name)}, true
	case "retrying":
		if st.Attempts == 0 || st.State == pipeline.StateFailed || st.State == pipeline.StateNeedsResync {
			return observed{}, false
		}
		return observed{value: fmt.Sprintf("%d attempts", st.Attempts),
			summary: fmt.Sprintf("pipeline %s keeps failing and retrying (%d attempts)", name, st.Attempts),
			detail:  fmt.Sprintf("The last error: %s", oneLine(st.LastError))}, true
	}
	return observed{}, false
}

func detail(st *pipeline.Status, k string) any {
	if st.Progress.Source == nil {
		return nil
	}
	return st.Progress.Source.Detail[k]
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func bytes(v float64) string {
	const unit = 1024
	if v < unit {
		return fmt.Sprintf("%.0f B", v)
	}
	div, exp := float64(unit), 0
	for n := v / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v/div, "KMGTPE"[exp])
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}
