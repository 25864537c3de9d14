package typematrix

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Markdown renders the matrix for docs/type-mappings.md: per source, every
// column type with its values, the kinds cdcd reads them as, and per sink
// whether each value arrives exactly, or what the sink does instead.
func Markdown() string {
	var b strings.Builder
	b.WriteString(`Generated from the type matrix (test/typematrix, run by every sink's
TestTypeMatrix): each source type below is written with the values listed, read
by the snapshot and by the stream, and read back from each destination; both
paths must agree with each other and with what the source holds. **exact**:
every value reads back equal (instants to the microsecond, floats by value and
sign, JSON by value with duplicate keys kept, decimals digit for digit). Where a
sink cannot hold a value, the cell says what it does: **NULL, counted** is the
` + "`on_unrepresentable: null`" + ` policy (the value stored as NULL and counted in
` + "`cdcd_sink_values_nulled_total`" + `; the default, ` + "`error`" + `, stops the
pipeline naming table, column and position); **stored as …, counted** is that
policy where the destination cannot hold NULL either; **stored as …, counted as
altered** is a value the destination has no form to tell apart from another (a
NULL array and [] in ClickHouse; JSON's null and NULL where the value is
written as JSON text), stored under either policy and counted in
` + "`cdcd_sink_values_altered_total`" + `; **left out on the stand-in** is a
value the test destination cannot store and the service can.

Destinations: `)
	for i, t := range Targets {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", t.Name, t.Destination)
	}
	b.WriteString(".\n")
	for _, src := range Sources {
		fmt.Fprintf(&b, "\n### %s source\n\n", map[string]string{"postgres": "Postgres", "mysql": "MySQL/MariaDB"}[src.Name])
		b.WriteString("| source type | values | kind |")
		for _, t := range Targets {
			fmt.Fprintf(&b, " %s |", t.Name)
		}
		b.WriteString("\n|---|---|---|")
		for range Targets {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, c := range src.Columns {
			typ := "`" + c.Type + "`"
			if c.Note != "" {
				typ += " (" + c.Note + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |", typ, values(c), kinds(c))
			for _, t := range Targets {
				fmt.Fprintf(&b, " %s |", outcome(t.Name, src, c))
			}
			b.WriteString("\n")
		}
		if src.Name == "postgres" {
			b.WriteString("\nUnchanged TOAST: a row updated without its out-of-line `text` value, with and\nwithout a key change, keeps the value at every destination (the `toast` table of the run).\n")
		}
	}
	return b.String()
}

// label names a cell in the docs: its literal, or its note when the literal
// is long.
func label(c Column, i int) string {
	if i == NullCells {
		return "NULL"
	}
	cell := c.Cells[i]
	sql := strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(cell.SQL)
	if len(sql) > 40 {
		if cell.Note != "" {
			return cell.Note
		}
		sql = sql[:30] + "…"
	}
	sql = strings.ReplaceAll(sql, "|", `\|`)
	sql = strings.ReplaceAll(sql, "`", "'")
	if cell.Note != "" {
		return "`" + sql + "` (" + cell.Note + ")"
	}
	return "`" + sql + "`"
}

func values(c Column) string {
	var out []string
	for i := range c.Cells {
		out = append(out, label(c, i))
	}
	return strings.Join(out, ", ")
}

func kinds(c Column) string {
	var out []string
	for _, cell := range c.Cells {
		k := cell.Want.Kind().String()
		if cell.Want.Kind() == schema.KindUnknown {
			k = "unknown"
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return strings.Join(out, ", ")
}

// outcome is a target's cell for a column: exact, or each group of values
// with what happens to them.
func outcome(target string, src Source, c Column) string {
	type group struct {
		what string
		idx  []int
	}
	var groups []*group
	add := func(what string, i int) {
		for _, g := range groups {
			if g.what == what {
				g.idx = append(g.idx, i)
				return
			}
		}
		groups = append(groups, &group{what: what, idx: []int{i}})
	}
	for i := NullCells; i < len(c.Cells); i++ {
		if i == AllCells {
			continue
		}
		if p, ok := standIn(target, src.Name, c.Name, i); ok && i >= 0 {
			add("left out on the stand-in: "+p.Why, i)
			continue
		}
		p, ok := PolicyFor(target, src.Name, c.Name, i)
		if !ok {
			continue
		}
		what := "NULL, counted"
		switch {
		case p.Altered && p.Stored == nil:
			what = "NULL, counted as altered"
		case p.Altered:
			what = "stored as " + show(*p.Stored) + ", counted as altered"
		case p.Stored != nil:
			what = "stored as " + show(*p.Stored) + ", counted"
		}
		add(what+": "+p.Why, i)
	}
	if len(groups) == 0 {
		return "exact"
	}
	parts := []string{"exact except"}
	for _, g := range groups {
		var ls []string
		for _, i := range g.idx {
			ls = append(ls, label(c, i))
		}
		parts = append(parts, strings.Join(ls, ", ")+" → "+strings.ReplaceAll(g.what, "|", `\|`))
	}
	return parts[0] + " " + strings.Join(parts[1:], "; ")
}
