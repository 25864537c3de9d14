package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/spf13/cobra"
)

func newTransforms() *cobra.Command {
	var c client
	cmd := &cobra.Command{Use: "transforms", Short: "Work with transform chains on a running server"}
	c.register(cmd)
	var file, pipe, rowsFile, table, conn string
	var limit int
	preview := &cobra.Command{
		Use:   "preview -f FILE [--pipeline NAME] (--rows ROWS.jsonl | --table SCHEMA.TABLE [--connection NAME] [--limit N])",
		Short: "Run a pipeline's transforms on sample rows and show each row before and after, and the destination shape",
		Long: "Runs the transforms of a pipeline in FILE on sample rows: given as JSON lines (one object per row), or read live\n" +
			"from a table through a stored connection (by default the pipeline's source connection). Nothing is written.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := config.LoadFile(file)
			if err != nil {
				return &exitError{2, err}
			}
			var p *config.Pipeline
			for i := range f.Pipelines {
				if pipe == "" || f.Pipelines[i].Name == pipe {
					p = &f.Pipelines[i]
					break
				}
			}
			if p == nil {
				return &exitError{2, fmt.Errorf("%s has no pipeline %q", file, pipe)}
			}
			req := map[string]any{"transforms": p.Transforms}
			switch {
			case rowsFile != "" && table != "":
				return &exitError{2, fmt.Errorf("give --rows or --table, not both")}
			case rowsFile != "":
				rows, err := readJSONLines(rowsFile)
				if err != nil {
					return &exitError{2, err}
				}
				req["rows"] = rows
			case table != "":
				if conn == "" {
					conn = p.Source.Connection
				}
				if conn == "" {
					return &exitError{2, fmt.Errorf("pipeline %s has an inline source: name a stored connection with --connection", p.Name)}
				}
				req["source"] = map[string]any{"connection": conn, "table": table, "limit": limit}
			default:
				return &exitError{2, fmt.Errorf("give sample rows with --rows, or a table to read them from with --table")}
			}
			body, err := configJSON(req)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "POST", "/api/v1/transforms/preview", body, &raw); err != nil {
				return err
			}
			var res struct {
				Output struct {
					ID      struct{ Namespace, Name string } `json:"id"`
					Columns []struct {
						Name string `json:"name"`
						Type struct {
							Kind string `json:"kind"`
							Name string `json:"name"`
						} `json:"type"`
					} `json:"columns"`
				} `json:"output"`
				Rows []struct {
					Before  json.RawMessage `json:"before"`
					After   json.RawMessage `json:"after"`
					Dropped bool            `json:"dropped"`
					Error   string          `json:"error"`
				} `json:"rows"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(cmd, raw, nil, nil)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "destination %s.%s:", res.Output.ID.Namespace, res.Output.ID.Name)
			for _, col := range res.Output.Columns {
				fmt.Fprintf(out, " %s %s", col.Name, col.Type.Name)
			}
			fmt.Fprintln(out)
			compact := func(m json.RawMessage) string {
				var b bytes.Buffer
				if json.Compact(&b, m) != nil {
					return string(m)
				}
				return b.String()
			}
			for i, r := range res.Rows {
				fmt.Fprintf(out, "\nrow %d\n  before %s\n", i+1, compact(r.Before))
				switch {
				case r.Error != "":
					fmt.Fprintf(out, "  error  %s\n", r.Error)
				case r.Dropped:
					fmt.Fprintln(out, "  dropped")
				default:
					fmt.Fprintf(out, "  after  %s\n", compact(r.After))
				}
			}
			return nil
		},
	}
	preview.Flags().StringVarP(&file, "file", "f", "", "config file with the pipeline (YAML or JSON)")
	preview.Flags().StringVar(&pipe, "pipeline", "", "pipeline whose transforms to run (default: the file's first)")
	preview.Flags().StringVar(&rowsFile, "rows", "", "sample rows, one JSON object per line")
	preview.Flags().StringVar(&table, "table", "", "read sample rows from this source table")
	preview.Flags().StringVar(&conn, "connection", "", "stored source connection to read from (default: the pipeline's)")
	preview.Flags().IntVar(&limit, "limit", 10, "rows to read from --table")
	_ = preview.MarkFlagRequired("file")
	cmd.AddCommand(preview)
	return cmd
}

func readJSONLines(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber() // numbers stay exact
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			return nil, fmt.Errorf("%s:%d: not a JSON object: %w", path, n, err)
		}
		out = append(out, row)
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, err
	}
	return out, nil
}
