package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// client talks to a running `cdcd serve`.
type client struct {
	server string
	token  string
	output string
	// transformChange is apply's answer to a changed transform chain.
	transformChange string
	// expandSecrets makes apply resolve ${…} references on the client.
	expandSecrets bool
}

func (c *client) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&c.server, "server", envOr("CDCD_SERVER", "http://127.0.0.1:8080"), "URL of the cdcd server (env CDCD_SERVER)")
	cmd.PersistentFlags().StringVar(&c.token, "token", "", "API token (default: env CDCD_TOKEN)")
	cmd.PersistentFlags().StringVarP(&c.output, "output", "o", "table", "output: table, json or yaml")
}

// apiError is an error response of the server.
type apiError struct {
	Status   int
	Message  string           `json:"error"`
	Problems []config.Problem `json:"problems"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server answered %d: %s", e.Status, e.Message)
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s", p.Error())
	}
	return b.String()
}

// authorize sets req's bearer token: --token, or CDCD_TOKEN.
func (c *client) authorize(req *http.Request) {
	tok := c.token
	if tok == "" {
		tok = os.Getenv("CDCD_TOKEN")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

func (c *client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach cdcd server at %s (is `cdcd serve` running? set --server or CDCD_SERVER): %w", c.server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		code := 1
		if resp.StatusCode == 422 || resp.StatusCode == 400 {
			code = 2
		}
		return &exitError{code, e}
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *client) print(cmd *cobra.Command, v any, header []string, rows func(tw io.Writer)) error {
	if c.output == "yaml" {
		b, ok := v.(json.RawMessage)
		if !ok {
			var err error
			if b, err = json.Marshal(v); err != nil {
				return err
			}
		}
		// JSON is YAML: a node keeps the server's key order
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			return err
		}
		enc := yaml.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent(2)
		if err := enc.Encode(plainStyle(&n)); err != nil {
			return err
		}
		return enc.Close()
	}
	if c.output == "json" || rows == nil {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if c.output != "table" {
		return &exitError{2, fmt.Errorf("--output must be table, json or yaml, got %q", c.output)}
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	rows(tw)
	return tw.Flush()
}

type pipelineView struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Paused    bool   `json:"paused"`
	LastError string `json:"last_error"`
	Status    *struct {
		Degraded bool `json:"degraded"`
		Progress struct {
			ChangesWritten uint64   `json:"changes_written"`
			LagSeconds     *float64 `json:"lag_seconds"`
			CaughtUp       bool     `json:"caught_up"`
			Committed      string   `json:"committed_position"`
		} `json:"progress"`
	} `json:"status"`
}

func newPipelines() *cobra.Command {
	var c client
	cmd := &cobra.Command{Use: "pipelines", Aliases: []string{"pipeline", "p"}, Short: "Manage pipelines on a running server"}
	c.register(cmd)
	list := &cobra.Command{Use: "list", Short: "List pipelines", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/pipelines", nil, &raw); err != nil {
			return err
		}
		var v struct {
			Pipelines []pipelineView `json:"pipelines"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return c.print(cmd, raw, []string{"NAME", "STATE", "CHANGES", "LAG", "ERROR"}, func(tw io.Writer) {
			for _, p := range v.Pipelines {
				var n uint64
				lag := "unknown"
				state := p.State
				if p.Status != nil {
					n = p.Status.Progress.ChangesWritten
					lag = formatLag(p.Status.Progress.LagSeconds, p.Status.Progress.CaughtUp)
					if p.Status.Degraded {
						state += " (degraded)"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Name, state, n, lag, oneLine(p.LastError))
			}
		})
	}}
	get := &cobra.Command{Use: "get NAME", Short: "Show a pipeline", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/pipelines/"+args[0], nil, &raw); err != nil {
			return err
		}
		return c.print(cmd, raw, nil, nil)
	}}
	var file string
	apply := &cobra.Command{Use: "apply -f FILE", Short: "Create or update the connections and pipelines of a file", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.apply(cmd, file, true) }}
	apply.Flags().StringVarP(&file, "file", "f", "", "config file (YAML or JSON)")
	apply.Flags().BoolVar(&c.expandSecrets, "expand-secrets", false, "resolve ${ENV} and ${file:/path} references here, from this machine, before sending (default: send them as written; the server resolves only those its --secret-env-prefix and --secrets-dir allow)")
	apply.Flags().StringVar(&c.transformChange, "transform-change", "", "when a pipeline's transforms changed: keep_written (rows already written stay as they are) or resync (snapshot again with the new chain)")
	_ = apply.MarkFlagRequired("file")
	action := func(use, verb, short string) *cobra.Command {
		return &cobra.Command{Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.do(cmd.Context(), "POST", "/api/v1/pipelines/"+url.PathEscape(args[0])+"/"+verb, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pipeline %s: %s\n", args[0], map[string]string{"pause": "paused", "resume": "resumed"}[verb])
			return nil
		}}
	}
	changes := &cobra.Command{Use: "schema-changes NAME", Short: "List the tables a schema-change policy holds, with the proposed change", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "GET", "/api/v1/pipelines/"+args[0]+"/schema-changes", nil, &raw); err != nil {
				return err
			}
			var v struct {
				SchemaChanges []struct {
					Table  struct{ Namespace, Name string } `json:"table"`
					Status string                           `json:"status"`
					Reason string                           `json:"reason"`
					DDL    []string                         `json:"ddl"`
					Held   int64                            `json:"held_changes"`
				} `json:"schema_changes"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			return c.print(cmd, raw, []string{"TABLE", "STATUS", "HELD", "CHANGE", "PROPOSED DDL"}, func(tw io.Writer) {
				for _, h := range v.SchemaChanges {
					fmt.Fprintf(tw, "%s.%s\t%s\t%d\t%s\t%s\n", h.Table.Namespace, h.Table.Name, h.Status, h.Held, h.Reason, strings.Join(h.DDL, "; "))
				}
			})
		}}
	resolve := &cobra.Command{Use: "resolve NAME TABLE approve|reject|new_column",
		Short: "Decide on a held schema change; the pipeline restarts and applies it in order", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]string{"decision": args[2]}
			if err := c.do(cmd.Context(), "POST", "/api/v1/pipelines/"+args[0]+"/schema-changes/"+args[1], body, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pipeline %s: table %s: %s\n", args[0], args[1], args[2])
			return nil
		}}
	skipped := &cobra.Command{Use: "skipped NAME", Short: "List the newest changes a transform failed on and the pipeline skipped", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "GET", "/api/v1/pipelines/"+args[0]+"/skipped", nil, &raw); err != nil {
				return err
			}
			var v struct {
				Skipped []struct {
					Table     struct{ Namespace, Name string } `json:"table"`
					Position  string                           `json:"position"`
					Transform string                           `json:"transform"`
					Error     string                           `json:"error"`
					At        time.Time                        `json:"at"`
				} `json:"skipped"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			return c.print(cmd, raw, []string{"AT", "TABLE", "TRANSFORM", "POSITION", "ERROR"}, func(tw io.Writer) {
				for _, k := range v.Skipped {
					fmt.Fprintf(tw, "%s\t%s.%s\t%s\t%s\t%s\n", k.At.Format(time.RFC3339), k.Table.Namespace, k.Table.Name, k.Transform, k.Position, oneLine(k.Error))
				}
			})
		}}
	var follow bool
	var last int
	events := &cobra.Command{Use: "events NAME", Short: "Show a pipeline's events (state changes, failures, warnings, schema changes, snapshots); -f follows", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.events(cmd, args[0], last, follow) }}
	events.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming events as they happen (Server-Sent Events; reconnects)")
	events.Flags().IntVarP(&last, "last", "n", 50, "how many of the newest events to show first (0: all kept)")
	var force bool
	del := &cobra.Command{Use: "delete NAME", Short: "Stop and delete a pipeline with its offsets; its source drops its slot, its sink forgets its offset", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/pipelines/" + url.PathEscape(args[0])
			if !force {
				if err := c.do(cmd.Context(), "DELETE", path, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pipeline %s: deleted\n", args[0])
				return nil
			}
			var rep struct {
				Leftovers []struct{ Side, What, SQL, Error string } `json:"leftovers"`
			}
			if err := c.do(cmd.Context(), "DELETE", path+"?force=true", nil, &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pipeline %s: deleted\n", args[0])
			if len(rep.Leftovers) > 0 {
				fmt.Fprintf(out, "left behind; clean it up by hand:\n")
			}
			for _, l := range rep.Leftovers {
				fmt.Fprintf(out, "- %s: %s\n  cleanup failed: %s\n  to remove it: %s\n", l.Side, l.What, oneLine(l.Error), l.SQL)
			}
			return nil
		}}
	del.Flags().BoolVar(&force, "force", false, "delete even when the source or destination cannot clean up (a server that does not answer); prints what is left and the statements that remove it")
	var resyncTables []string
	resync := &cobra.Command{Use: "resync NAME", Args: cobra.ExactArgs(1),
		Short: "Read tables again and end equal to the source, deletes included; without --tables, the whole pipeline (recovers needs_resync)",
		Long: `Resync reads tables of a pipeline again while its other tables keep streaming; when a
table's read is done, the rows at the destination that it did not find and that the stream did not
change since are deleted (per the sink's delete_mode).

Without --tables the whole pipeline is resynced: its history (offsets, replication slot or binlog
position, schema history) is dropped first, as a delete would, so this is the one command that
recovers a pipeline in needs_resync (a lost slot, purged binlogs, a restored source database).
Follow it with "cdcd pipelines events NAME -f".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep struct {
				Tables []string `json:"tables"`
				Reset  bool     `json:"reset"`
			}
			body := map[string]any{}
			if len(resyncTables) > 0 {
				body["tables"] = resyncTables
			}
			if err := c.do(cmd.Context(), "POST", "/api/v1/pipelines/"+url.PathEscape(args[0])+"/resync", body, &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if rep.Reset {
				fmt.Fprintf(out, "pipeline %s: resyncing from scratch (its history was dropped): %s\n", args[0], strings.Join(rep.Tables, ", "))
			} else {
				fmt.Fprintf(out, "pipeline %s: resyncing %s while the other tables stream\n", args[0], strings.Join(rep.Tables, ", "))
			}
			fmt.Fprintf(out, "follow it with: cdcd pipelines events %s -f\n", args[0])
			return nil
		}}
	resync.Flags().StringSliceVar(&resyncTables, "tables", nil, "source tables to resync (namespace.name, comma-separated or repeated); default: the whole pipeline")
	cmd.AddCommand(list, get, apply, changes, resolve, skipped, events,
		action("pause", "pause", "Drain and stop a pipeline until resumed"),
		action("resume", "resume", "Start a paused or failed pipeline again"), del, resync, c.verifyCommand())
	return cmd
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// apply sends a file's connections (and pipelines) to the server. ${…}
// references go as written (the server resolves those its operator allowed)
// unless expandSecrets resolves them here first, from this machine's
// environment and files.
func (c *client) apply(cmd *cobra.Command, file string, pipelines bool) error {
	f, err := config.LoadFile(file)
	if err != nil {
		return &exitError{2, err}
	}
	if c.expandSecrets {
		if f, err = expandFile(f); err != nil {
			return err
		}
	}
	if !pipelines {
		f.Pipelines, f.Alerts = nil, nil
	}
	body, err := configJSON(f)
	if err != nil {
		return err
	}
	path := "/api/v1/apply"
	if c.transformChange != "" {
		path += "?transform_change=" + url.QueryEscape(c.transformChange)
	}
	// all or nothing: the server validates the whole file first and stores
	// it in one transaction
	var v struct {
		Applied []struct{ Kind, Name, Result, Notice string } `json:"applied"`
	}
	if err := c.do(cmd.Context(), "POST", path, body, &v); err != nil {
		return fmt.Errorf("nothing applied: %w", err)
	}
	out := cmd.OutOrStdout()
	for _, a := range v.Applied {
		if a.Kind == "alerts" {
			fmt.Fprintf(out, "alerts: %s\n", a.Result)
			continue
		}
		fmt.Fprintf(out, "%s %s: applied (%s)\n", a.Kind, a.Name, a.Result)
		if a.Notice != "" {
			fmt.Fprintf(out, "%s %s: %s\n", a.Kind, a.Name, a.Notice)
		}
	}
	return nil
}

func newAlerts() *cobra.Command {
	var c client
	cmd := &cobra.Command{Use: "alerts", Short: "Alert rules, firing alerts and notification history on a running server"}
	c.register(cmd)
	get := &cobra.Command{Use: "get", Short: "Show the alert rules", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/alerts", nil, &raw); err != nil {
			return err
		}
		return c.print(cmd, raw, nil, nil)
	}}
	var file string
	apply := &cobra.Command{Use: "apply -f FILE", Short: "Replace the alert rules with a file's alerts: section (its channels are connections)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := config.LoadFile(file)
			if err != nil {
				return &exitError{2, err}
			}
			if f.Alerts == nil {
				return &exitError{2, fmt.Errorf("%s has no alerts: section", file)}
			}
			if err := c.do(cmd.Context(), "PUT", "/api/v1/alerts", f.Alerts, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "alerts: %d rule(s) applied\n", len(f.Alerts.Rules))
			return nil
		}}
	apply.Flags().StringVarP(&file, "file", "f", "", "config file (YAML or JSON)")
	_ = apply.MarkFlagRequired("file")
	active := &cobra.Command{Use: "active", Short: "List the pending and firing alerts", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/alerts/active", nil, &raw); err != nil {
			return err
		}
		var v struct {
			Alerts []struct {
				Rule, Pipeline, State, Severity, Summary string
				Since                                    time.Time
			}
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return c.print(cmd, raw, []string{"RULE", "PIPELINE", "STATE", "SEVERITY", "SINCE", "SUMMARY"}, func(tw io.Writer) {
			for _, a := range v.Alerts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Rule, a.Pipeline, a.State, a.Severity, a.Since.Local().Format(time.RFC3339), oneLine(a.Summary))
			}
		})
	}}
	history := &cobra.Command{Use: "history", Short: "List the newest notifications and whether each channel took them", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/alerts/history", nil, &raw); err != nil {
			return err
		}
		var v struct {
			History []struct {
				At                                       time.Time
				Rule, Pipeline, Status, Channel, Summary string
				Delivered                                bool
				Attempts                                 int
				Error                                    string
			}
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return c.print(cmd, raw, []string{"AT", "STATUS", "RULE", "PIPELINE", "CHANNEL", "RESULT", "SUMMARY"}, func(tw io.Writer) {
			for _, h := range v.History {
				res := fmt.Sprintf("delivered (%d attempts)", h.Attempts)
				if !h.Delivered {
					res = fmt.Sprintf("failed after %d attempts: %s", h.Attempts, oneLine(h.Error))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.At.Local().Format(time.RFC3339), h.Status, h.Rule, h.Pipeline, h.Channel, res, oneLine(h.Summary))
			}
		})
	}}
	cmd.AddCommand(get, apply, active, history)
	return cmd
}

// expandFile resolves every reference of f's configs from this process's
// environment and files.
func expandFile(f config.File) (config.File, error) {
	var ps config.Problems
	expand := func(n *yaml.Node, path string) {
		e, err := config.AllSecrets.Expand(n, path)
		var eps config.Problems
		if errors.As(err, &eps) {
			ps = append(ps, eps...)
		}
		if e != nil {
			*n = *e
		}
	}
	for i := range f.Connections {
		expand(&f.Connections[i].Config, fmt.Sprintf("connections[%s].config", f.Connections[i].Name))
	}
	for i := range f.Pipelines {
		p := &f.Pipelines[i]
		expand(&p.Source.Config, fmt.Sprintf("pipelines[%s].source.config", p.Name))
		expand(&p.Sink.Config, fmt.Sprintf("pipelines[%s].sink.config", p.Name))
		for j := range p.Transforms {
			expand(&p.Transforms[j].Config, fmt.Sprintf("pipelines[%s].transforms[%d].config", p.Name, j))
		}
	}
	if len(ps) > 0 {
		return f, ps
	}
	return f, nil
}

func configJSON(v any) (json.RawMessage, error) {
	b, err := config.Marshal(v)
	return json.RawMessage(b), err
}

func newConnections() *cobra.Command {
	var c client
	cmd := &cobra.Command{Use: "connections", Aliases: []string{"connection", "c"}, Short: "Manage connections on a running server"}
	c.register(cmd)
	list := &cobra.Command{Use: "list", Short: "List connections", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/connections", nil, &raw); err != nil {
			return err
		}
		var v struct {
			Connections []struct{ Name, Type string } `json:"connections"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return c.print(cmd, raw, []string{"NAME", "TYPE"}, func(tw io.Writer) {
			for _, x := range v.Connections {
				fmt.Fprintf(tw, "%s\t%s\n", x.Name, x.Type)
			}
		})
	}}
	get := &cobra.Command{Use: "get NAME", Short: "Show a connection (secrets redacted)", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		var raw json.RawMessage
		if err := c.do(cmd.Context(), "GET", "/api/v1/connections/"+args[0], nil, &raw); err != nil {
			return err
		}
		return c.print(cmd, raw, nil, nil)
	}}
	var as string
	test := &cobra.Command{Use: "test NAME", Short: "Connect and report what is wrong", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		var res struct {
			OK       bool     `json:"ok"`
			Problems []string `json:"problems"`
			Warnings []string `json:"warnings"`
		}
		path := "/api/v1/connections/" + url.PathEscape(args[0]) + "/test"
		if as != "" {
			path += "?role=" + url.QueryEscape(as)
		}
		if err := c.do(cmd.Context(), "POST", path, nil, &res); err != nil {
			return err
		}
		defer func() {
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.OutOrStdout(), "  warning: %s\n", w)
			}
		}()
		if res.OK {
			fmt.Fprintf(cmd.OutOrStdout(), "connection %s: ok\n", args[0])
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "connection %s: %d problem(s)\n", args[0], len(res.Problems))
		for _, p := range res.Problems {
			fmt.Fprintf(cmd.OutOrStdout(), "  - %s\n", p)
		}
		return &exitError{1, fmt.Errorf("connection %s failed its test", args[0])}
	}}
	test.Flags().StringVar(&as, "as", "", "the role to test it in: source, destination or alert_channel (default: the role its config fits; a source without tables is tested on its server alone)")
	var schemaName, search string
	var limit int
	var catalogAs string
	catalog := &cobra.Command{Use: "catalog NAME", Short: "List the tables of a connection's server: a source's to pick (columns, key, estimate, problems), or with --as destination those that exist there", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type table struct {
				Table           struct{ Namespace, Name string }
				Columns         []struct{ Name string }
				PrimaryKey      []string `json:"primary_key"`
				ReplicaIdentity string   `json:"replica_identity"`
				EstimatedRows   *int64   `json:"estimated_rows"`
				Problems        []string
			}
			var all []table
			var pages []json.RawMessage
			after := ""
			for {
				q := url.Values{"limit": {strconv.Itoa(min(limit, 1000))}}
				for k, v := range map[string]string{"schema": schemaName, "search": search, "after": after, "role": catalogAs} {
					if v != "" {
						q.Set(k, v)
					}
				}
				var raw json.RawMessage
				if err := c.do(cmd.Context(), "GET", "/api/v1/connections/"+url.PathEscape(args[0])+"/catalog?"+q.Encode(), nil, &raw); err != nil {
					return err
				}
				var page struct {
					Tables []table
					Next   string
				}
				if err := json.Unmarshal(raw, &page); err != nil {
					return err
				}
				pages, all = append(pages, raw), append(all, page.Tables...)
				if page.Next == "" || len(all) >= limit {
					break
				}
				after = page.Next
			}
			raw, _ := json.Marshal(pages)
			return c.print(cmd, raw, []string{"TABLE", "COLUMNS", "PRIMARY KEY", "ROWS (EST.)", "PROBLEMS"}, func(tw io.Writer) {
				for _, t := range all {
					est := "unknown"
					if t.EstimatedRows != nil {
						est = strconv.FormatInt(*t.EstimatedRows, 10)
					}
					fmt.Fprintf(tw, "%s.%s\t%d\t%s\t%s\t%s\n", t.Table.Namespace, t.Table.Name, len(t.Columns), strings.Join(t.PrimaryKey, ","), est, oneLine(strings.Join(t.Problems, "; ")))
				}
			})
		}}
	catalog.Flags().StringVar(&schemaName, "schema", "", "only this schema's (database's) tables")
	catalog.Flags().StringVar(&search, "search", "", "only tables whose schema.name contains this")
	catalog.Flags().IntVar(&limit, "limit", 1000, "at most this many tables")
	catalog.Flags().StringVar(&catalogAs, "as", "", "source or destination: the role to list a type that has both in (a postgres connection); default: source, or destination for a type that is only one")
	var file string
	apply := &cobra.Command{Use: "apply -f FILE", Short: "Create or update the connections of a file", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.apply(cmd, file, false) }}
	apply.Flags().StringVarP(&file, "file", "f", "", "config file (YAML or JSON)")
	apply.Flags().BoolVar(&c.expandSecrets, "expand-secrets", false, "resolve ${ENV} and ${file:/path} references here, from this machine, before sending")
	_ = apply.MarkFlagRequired("file")
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a connection no pipeline uses", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		if err := c.do(cmd.Context(), "DELETE", "/api/v1/connections/"+args[0], nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "connection %s: deleted\n", args[0])
		return nil
	}}
	cmd.AddCommand(list, get, test, apply, del, catalog)
	return cmd
}

// newAudit is `cdcd audit`: the server's audit log (an admin token's).
func newAudit() *cobra.Command {
	var c client
	var limit int
	var before string
	cmd := &cobra.Command{Use: "audit", Short: "List the state-changing requests the server received, newest first (needs an admin token)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if before != "" {
				q.Set("before", before)
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "GET", "/api/v1/audit?"+q.Encode(), nil, &raw); err != nil {
				return err
			}
			var v struct {
				Entries []store.AuditEntry `json:"entries"`
				Next    string             `json:"next"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			err := c.print(cmd, raw, []string{"AT", "TOKEN", "ACTION", "TARGET", "STATUS", "FROM", "ERROR"}, func(tw io.Writer) {
				for _, e := range v.Entries {
					who := "(open mode)"
					if e.TokenName != "" {
						who = printable(strings.TrimSpace(e.TokenName + " " + e.TokenID))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.At.Format(time.RFC3339), who, e.Action, printable(e.Target), e.Status, e.Remote, oneLine(printable(e.Error)))
				}
			})
			if err == nil && v.Next != "" && c.output != "json" {
				fmt.Fprintf(cmd.ErrOrStderr(), "older entries: cdcd audit --before %s\n", v.Next)
			}
			return err
		}}
	c.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 50, "entries to show (1 to 1000)")
	cmd.Flags().StringVar(&before, "before", "", "show entries older than this time (RFC 3339)")
	return cmd
}

// formatLag renders a pipeline's lag: unknown, caught up, or its age.
func formatLag(seconds *float64, caughtUp bool) string {
	switch {
	case seconds == nil:
		return "unknown"
	case caughtUp:
		return "0s (caught up)"
	default:
		return (time.Duration(*seconds * float64(time.Second))).Round(100 * time.Millisecond).String()
	}
}

// event is a pipeline event as the API sends it.
type event struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Level   string    `json:"level"`
	Table   string    `json:"table"`
	Message string    `json:"message"`
}

func printEvent(w io.Writer, e event) {
	table := ""
	if e.Table != "" {
		table = " [" + e.Table + "]"
	}
	fmt.Fprintf(w, "%s  %-7s %-13s%s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Level, e.Kind, table, e.Message)
}

// events prints the newest last events of a pipeline (-o json: one JSON
// object a line), then, with follow, streams the next ones until interrupted.
func (c *client) events(cmd *cobra.Command, name string, last int, follow bool) error {
	var all []event
	after := int64(0)
	for {
		var page struct{ Events []event }
		if err := c.do(cmd.Context(), "GET", fmt.Sprintf("/api/v1/pipelines/%s/events?after=%d&limit=10000", name, after), nil, &page); err != nil {
			return err
		}
		all = append(all, page.Events...)
		if len(all) > 0 {
			after = all[len(all)-1].Seq
		}
		if last > 0 && len(all) > last {
			all = all[len(all)-last:]
		}
		if len(page.Events) < 10000 {
			break
		}
	}
	out := cmd.OutOrStdout()
	show := func(e event) {
		if c.output == "json" {
			b, _ := json.Marshal(e)
			fmt.Fprintf(out, "%s\n", b)
			return
		}
		printEvent(out, e)
	}
	for _, e := range all {
		show(e)
	}
	if !follow {
		return nil
	}
	for {
		err := c.stream(cmd.Context(), fmt.Sprintf("/api/v1/pipelines/%s/events/stream", name), after, func(e event) {
			after = e.Seq
			show(e)
		})
		if cmd.Context().Err() != nil {
			return nil
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err // the server said no (404, 401): retrying will not help
		}
		time.Sleep(time.Second) // the server restarted or the stream fell behind: resume after the last one shown
	}
}

// stream reads Server-Sent Events of path after Last-Event-ID after, until
// the stream ends or ctx does.
func (c *client) stream(ctx context.Context, path string, after int64, fn func(event)) error {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(c.server, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	c.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return &exitError{1, e}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && data != "":
			var e event
			if err := json.Unmarshal([]byte(data), &e); err == nil {
				fn(e)
			}
			data = ""
		}
	}
	return sc.Err()
}

// plainStyle drops the flow style JSON input gives every mapping and list,
// so that the YAML reads as a config file does.
func plainStyle(n *yaml.Node) *yaml.Node {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 && n.Tag == "!!str" {
		n.Style &^= yaml.DoubleQuotedStyle // the encoder quotes what needs it
	}
	for _, c := range n.Content {
		plainStyle(c)
	}
	return n
}

// verifyReport is the part of app.VerifyReport the CLI prints.
type verifyReport struct {
	Seconds          float64 `json:"seconds"`
	Equal            bool    `json:"equal"`
	SourceBytes      int64   `json:"source_bytes"`
	DestinationBytes int64   `json:"destination_bytes"`
	Tables           []struct {
		Table       string   `json:"table"`
		Status      string   `json:"status"`
		SourceRows  int64    `json:"source_rows"`
		DestRows    int64    `json:"destination_rows"`
		Missing     int64    `json:"missing"`
		Extra       int64    `json:"extra"`
		Different   int64    `json:"different"`
		Ranges      int      `json:"ranges"`
		NotCompared []string `json:"not_compared"`
		Note        string   `json:"note"`
		Error       string   `json:"error"`
		Samples     *struct {
			Missing, Extra, Different [][]string
		} `json:"samples"`
	} `json:"tables"`
	Repair *struct {
		Tables []string `json:"tables"`
	} `json:"repair"`
}

func (c *client) verifyCommand() *cobra.Command {
	var tables []string
	var repair bool
	var timeout time.Duration
	cmd := &cobra.Command{Use: "verify NAME", Args: cobra.ExactArgs(1),
		Short: "Compare the replica with the source without copying tables out; --repair resyncs the tables that differ",
		Long: `Verify compares each table of a pipeline inside both databases: row counts and checksums of
key ranges, bisected down to the keys that differ. It prints, per table, the keys missing at the
destination, the extra ones and those with different values (a few of each), and the columns it
could not compare. Keys that differ are checked again after the stream had time to catch up.

With --repair the tables that differ are resynced while the others keep streaming. The exit
status is 0 when every compared table is equal, 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			body := map[string]any{"repair": repair}
			if len(tables) > 0 {
				body["tables"] = tables
			}
			var rep verifyReport
			if err := c.do(ctx, "POST", "/api/v1/pipelines/"+url.PathEscape(args[0])+"/verify", body, &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			keys := func(ks [][]string) string {
				s := make([]string, len(ks))
				for i, k := range ks {
					s[i] = strings.Join(k, ",")
				}
				return strings.Join(s, " ")
			}
			for _, t := range rep.Tables {
				switch t.Status {
				case "equal":
					fmt.Fprintf(out, "%s: equal (%d rows)\n", t.Table, t.SourceRows)
				case "different":
					fmt.Fprintf(out, "%s: DIFFERENT: %d missing, %d extra, %d different (source %d rows, destination %d)\n",
						t.Table, t.Missing, t.Extra, t.Different, t.SourceRows, t.DestRows)
					if s := t.Samples; s != nil {
						for _, l := range []struct {
							what string
							ks   [][]string
						}{{"missing", s.Missing}, {"extra", s.Extra}, {"different", s.Different}} {
							if len(l.ks) > 0 {
								fmt.Fprintf(out, "  %s: %s\n", l.what, keys(l.ks))
							}
						}
					}
				case "skipped":
					fmt.Fprintf(out, "%s: not compared: %s\n", t.Table, t.Note)
				default:
					fmt.Fprintf(out, "%s: could not be compared: %s\n", t.Table, t.Error)
				}
				if t.Note != "" && t.Status != "skipped" {
					fmt.Fprintf(out, "  note: %s\n", t.Note)
				}
				for _, n := range t.NotCompared {
					fmt.Fprintf(out, "  column not compared: %s\n", n)
				}
			}
			fmt.Fprintf(out, "verified in %.1fs, moving %s with the source and %s with the destination\n",
				rep.Seconds, humanBytes(rep.SourceBytes), humanBytes(rep.DestinationBytes))
			if rep.Repair != nil {
				fmt.Fprintf(out, "repair: resyncing %s while the other tables stream (follow it with: cdcd pipelines events %s -f)\n", strings.Join(rep.Repair.Tables, ", "), args[0])
			}
			if !rep.Equal {
				return &exitError{code: 1, err: errors.New("the replica differs from the source, or a table could not be compared")}
			}
			return nil
		}}
	cmd.Flags().StringSliceVar(&tables, "tables", nil, "source tables to verify (namespace.name, comma-separated or repeated); default: every table")
	cmd.Flags().BoolVar(&repair, "repair", false, "resync the tables found different")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long")
	return cmd
}

func humanBytes(n int64) string {
	switch {
	case n < 0:
		return "an unmeasured amount"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
