package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/go-mysql-org/go-mysql/client"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"golang.org/x/sync/errgroup"
)

// tablePlan is a table still to be copied, from the key after lastKey.
type tablePlan struct {
	id      schema.TableID
	cols    []colInfo
	table   schema.Table
	lastKey []any // nil: from the start
	// since is set for a resync: where it began. Its last chunk ends with a
	// sweep (schema.OpSweep) that removes at the destination the rows older
	// than since: neither read again nor changed since, so gone from the source.
	since offsets.Position
}

// snapState is a table's saved snapshot state: the JSON array of the last key
// copied (what earlier releases saved), or, for a resync, this object.
type snapState struct {
	Last  json.RawMessage  `json:"last,omitempty"`
	Since offsets.Position `json:"since,omitempty"`
}

func encodeState(lastKey string, since offsets.Position) []byte {
	if since == nil {
		return []byte(lastKey)
	}
	st := snapState{Since: since}
	if lastKey != "" {
		st.Last = json.RawMessage(lastKey)
	}
	b, _ := json.Marshal(st) // plain data
	return b
}

func decodeState(b []byte) (lastKey []any, since offsets.Position, err error) {
	if len(b) == 0 {
		return nil, nil, nil
	}
	if b[0] != '{' {
		err = json.Unmarshal(b, &lastKey)
		return lastKey, nil, err
	}
	var st snapState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, err
	}
	if len(st.Last) > 0 {
		if err := json.Unmarshal(st.Last, &lastKey); err != nil {
			return nil, nil, err
		}
	}
	return lastKey, st.Since, nil
}

// plan lists the tables whose snapshot is not done. resumed is false for a
// fresh pipeline, whose earlier progress (of an attempt that committed nothing)
// does not count.
func (s *Source) plan(ctx context.Context, resumed bool) ([]*tablePlan, error) {
	// built aside and published under the lock: SourceStatus reads it from
	// other goroutines (found by the race detector in the type matrix)
	progress := map[schema.TableID]*sources.SnapshotProgress{}
	defer func() {
		s.mu.Lock()
		s.progress = progress
		s.mu.Unlock()
	}()
	if s.cfg.Snapshot == "never" {
		return nil, nil
	}
	saved := map[schema.TableID]sources.SnapshotProgress{}
	if s.deps.Progress != nil {
		list, err := s.deps.Progress.LoadSnapshotProgress(ctx)
		if err != nil {
			return nil, fmt.Errorf("load snapshot progress: %w", err)
		}
		for _, p := range list {
			if !resumed {
				// a fresh pipeline reads every table from the start; a resync
				// requested or under way (its rows read under the old history)
				// still ends with its sweep
				_, since, _ := decodeState(p.State)
				p = sources.SnapshotProgress{Table: p.Table, Resync: p.Resync || (since != nil && !p.Done)}
			}
			saved[p.Table] = p
		}
	} else if resumed {
		return nil, nil
	}
	var since offsets.Position // of the resyncs that start now
	var out []*tablePlan
	for _, id := range s.cfg.tables {
		p, ok := saved[id]
		if resumed && !ok {
			// the pipeline streamed before this table had progress: it was
			// snapshotted with no progress store, or added later (not supported yet)
			p = sources.SnapshotProgress{Table: id}
		}
		if p.Resync {
			if since == nil {
				cur, err := s.currentPosition()
				if err != nil {
					return nil, err
				}
				since = sincePos(cur.file, cur.pos)
			}
			p = sources.SnapshotProgress{Table: id, State: encodeState("", since)}
			if err := s.deps.Progress.SaveSnapshotProgress(ctx, p); err != nil {
				return nil, fmt.Errorf("start the resync of %s: %w", id, err)
			}
			s.log.Info("resyncing the table while streaming: it is read again, then the rows it no longer has are removed at the destination", "table", id.String())
		}
		if p.Done {
			cp := p
			progress[id] = &cp
			continue
		}
		cols, t, err := s.describe(s.exec, id)
		if err != nil {
			return nil, err
		}
		tp := &tablePlan{id: id, cols: cols, table: t}
		if tp.lastKey, tp.since, err = decodeState(p.State); err != nil {
			return nil, fmt.Errorf("snapshot progress of %s: %w", id, err)
		}
		p.RowsEstimated = -1 // none: never a guess the snapshot passes long before done
		if res, err := s.exec("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", id.Namespace, id.Name); err == nil && res.RowNumber() > 0 {
			if null, _ := res.IsNull(0, 0); !null {
				p.RowsEstimated, _ = res.GetInt(0, 0)
			}
		}
		p.Table = id
		p.Resyncing = tp.since != nil
		cp := p
		progress[id] = &cp
		out = append(out, tp)
	}
	return out, nil
}

// describe reads a table's columns and key from information_schema, built the
// way a TABLE_MAP event is.
func (s *Source) describe(exec querier, id schema.TableID) ([]colInfo, schema.Table, error) {
	res, err := exec(`SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0),
		COALESCE(DATETIME_PRECISION, 0), COALESCE(CHARACTER_SET_NAME, ''), COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COLUMN_DEFAULT, EXTRA
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, id.Namespace, id.Name)
	if err != nil {
		return nil, schema.Table{}, fmt.Errorf("read columns of %s: %w", id, err)
	}
	var cols []colInfo
	t := schema.Table{ID: id}
	for i := 0; i < res.RowNumber(); i++ {
		name, _ := res.GetString(i, 0)
		dataType, _ := res.GetString(i, 1)
		colType, _ := res.GetString(i, 2)
		nullable, _ := res.GetString(i, 3)
		prec, _ := res.GetInt(i, 4)
		scale, _ := res.GetInt(i, 5)
		dtPrec, _ := res.GetInt(i, 6)
		charset, _ := res.GetString(i, 7)
		length, _ := res.GetInt(i, 8)
		p := int(prec)
		switch strings.ToLower(dataType) {
		case "datetime", "timestamp", "time":
			p = int(dtPrec)
		}
		c := fromInformationSchema(name, dataType, colType, nullable == "YES", p, int(scale), int(length), charset)
		c.table = id.String()
		cols = append(cols, c)
		// what rows from before the column hold in it: its DEFAULT, for a
		// snapshot that announces a column added while it was stopped
		var def *string
		if null, _ := res.IsNull(i, 9); !null {
			d, _ := res.GetString(i, 9)
			def = &d
		}
		extra, _ := res.GetString(i, 10)
		existing, err := s.dec.existing(&c, defaultSpec(s.flavor, def, extra, c.nullable))
		if err != nil {
			return nil, t, fmt.Errorf("table %s column %s: %w", id, name, err)
		}
		t.Columns = append(t.Columns, schema.Column{Name: c.name, Type: c.typ, Nullable: c.nullable, Existing: existing})
	}
	if len(cols) == 0 {
		return nil, t, errNoTable
	}
	keys, err := exec(`SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, id.Namespace, id.Name)
	if err != nil {
		return nil, t, fmt.Errorf("read the key of %s: %w", id, err)
	}
	for i := 0; i < keys.RowNumber(); i++ {
		k, _ := keys.GetString(i, 0)
		t.PrimaryKey = append(t.PrimaryKey, k)
	}
	if len(t.PrimaryKey) == 0 {
		return nil, t, fmt.Errorf("table %s: %w", id, errNoKey)
	}
	return cols, t, nil
}

// errNoTable: the table does not exist (any more).
var errNoTable = errors.New("table does not exist")

// errNoKey: the table has no primary key (or was replaced between the two
// catalog reads of describe).
var errNoKey = errors.New("has no primary key: cdcd needs one to read it in chunks and identify rows")

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// snapshot copies the planned tables chunk by chunk, each chunk inside a DBLog
// window of the stream: no locks, no RELOAD, resumable per chunk. Up to
// snapshot_workers tables are read at once, each on its own connection.
func (s *Source) snapshot(ctx context.Context, plan []*tablePlan) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *tablePlan)
	for range min(s.cfg.SnapshotWorkers, len(plan)) {
		g.Go(func() error {
			conn, err := s.connect(gctx)
			if err != nil {
				return err
			}
			// closing the socket (safe concurrently, unlike the client's Close)
			// unblocks a running query
			stop := context.AfterFunc(gctx, func() { conn.Conn.Conn.Close() })
			defer func() {
				stop()
				conn.Close()
			}()
			for tp := range work {
				if err := s.copyTable(gctx, conn, tp); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, tp := range plan {
			select {
			case work <- tp:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	s.log.Info("snapshot read")
	return nil
}

// readChunk runs a chunk's SELECT as a prepared statement, the first chunk's
// too: every row then comes in the binary protocol, typed as the binlog types
// it (the text protocol prints a FLOAT with six digits: 16777217 read as
// 16777200).
func readChunk(conn *client.Conn, q string, args ...any) (*gmysql.Result, error) {
	st, err := conn.Prepare(q)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Execute(args...)
}

// queries are the first-chunk and next-chunk SELECTs of the table's current columns.
func (tp *tablePlan) queries(chunkRows int) (first, next string) {
	var sel, keys []string
	for _, c := range tp.cols {
		sel = append(sel, quoteIdent(c.name))
	}
	for _, k := range tp.table.PrimaryKey {
		keys = append(keys, quoteIdent(k))
	}
	from := fmt.Sprintf("FROM %s.%s", quoteIdent(tp.id.Namespace), quoteIdent(tp.id.Name))
	order := " ORDER BY " + strings.Join(keys, ", ") + fmt.Sprintf(" LIMIT %d", chunkRows)
	first = "SELECT " + strings.Join(sel, ", ") + " " + from + order
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ")
	next = "SELECT " + strings.Join(sel, ", ") + " " + from + " WHERE (" + strings.Join(keys, ", ") + ") > (" + marks + ")" + order
	return first, next
}

func (tp *tablePlan) keyIndexes() []int {
	keyIdx := make([]int, len(tp.table.PrimaryKey))
	for i, k := range tp.table.PrimaryKey {
		for j, c := range tp.cols {
			if c.name == k {
				keyIdx[i] = j
			}
		}
	}
	return keyIdx
}

// redescribe reads the table's columns again (after a DDL).
func (s *Source) redescribe(exec querier, tp *tablePlan) error {
	cols, t, err := s.describe(exec, tp.id)
	if err != nil {
		return err
	}
	tp.cols, tp.table = cols, t
	return nil
}

// abandon closes a window without a chunk.
func (s *Source) abandon(ctx context.Context, id int) error {
	c := &closeReq{id: id, abandon: true}
	select {
	case s.windows <- windowReq{close: c}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Source) copyTable(ctx context.Context, conn *client.Conn, tp *tablePlan) error {
	exec := querier(conn.Execute) // every query of the snapshot on the worker's connection, which ctx can abort
	first, next := tp.queries(s.cfg.SnapshotChunkRows)
	retries := 0
	last := tp.lastKey
	for {
		// open the window: the stream records the table's keys from here on
		open := &openReq{table: tp.id, reply: make(chan int, 1)}
		select {
		case s.windows <- windowReq{open: open}:
		case <-ctx.Done():
			return ctx.Err()
		}
		id := <-open.reply
		// the columns as of now, inside the window: a DDL after this read falls in
		// the window, and the chunk is read again
		if err := s.redescribe(exec, tp); errors.Is(err, errNoTable) {
			// dropped or renamed away: nothing left to copy; what a table of that
			// name holds later comes from the stream
			s.log.Warn("a table being snapshotted no longer exists; its snapshot ends here", "table", tp.id.String())
			hw, err := s.positionOn(exec)
			if err != nil {
				return err
			}
			c := &closeReq{id: id, hwFile: hw.file, hwPos: hw.pos, done: true, lastKey: "null", emitted: make(chan bool, 1)}
			select {
			case s.windows <- windowReq{close: c}:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-c.emitted:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		} else if errors.Is(err, errNoKey) && retries < 10 {
			// a DDL may have replaced the table between the catalog reads: look again
			retries++
			if err := s.abandon(ctx, id); err != nil {
				return err
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		} else if err != nil {
			return err
		}
		first, next = tp.queries(s.cfg.SnapshotChunkRows)
		prev := last
		q, args := first, []any(nil)
		if last != nil {
			q, args = next, last
		}
		res, err := readChunk(conn, q, args...)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var me *gmysql.MyError
			if errors.As(err, &me) && (me.Code == gmysql.ER_BAD_FIELD_ERROR || me.Code == gmysql.ER_NO_SUCH_TABLE) && retries < 10 {
				// the table changed since it was described: describe it again
				retries++
				if err := s.abandon(ctx, id); err != nil {
					return err
				}
				continue
			}
			return classify(fmt.Errorf("snapshot chunk of %s: %w", tp.id, err))
		}
		keyIdx := tp.keyIndexes()
		hw, err := s.positionOn(exec)
		if err != nil {
			return err
		}
		c := &closeReq{id: id, hwFile: hw.file, hwPos: hw.pos, version: tp.table, emitted: make(chan bool, 1),
			done: res.RowNumber() < s.cfg.SnapshotChunkRows, since: tp.since}
		for i := 0; i < res.RowNumber(); i++ {
			row := make(schema.Row, len(tp.cols))
			for j := range tp.cols {
				v, err := res.GetValue(i, j)
				if err != nil {
					return err
				}
				val, err := s.dec.queried(&tp.cols[j], v)
				if err != nil { // a value cdcd cannot read is a data error: retrying reads it again
					return component.Permanent(fmt.Errorf("table %s column %s (snapshot): %w", tp.id, tp.cols[j].name, err))
				}
				row[j] = schema.Field{Name: tp.cols[j].name, Value: val}
			}
			key := make(schema.Row, len(keyIdx))
			for k, j := range keyIdx {
				key[k] = row[j]
			}
			c.rows = append(c.rows, row)
			c.keys = append(c.keys, string(key.AppendJSON(nil)))
			if i == res.RowNumber()-1 {
				last = make([]any, len(keyIdx))
				for k, j := range keyIdx {
					last[k], _ = res.GetValue(i, j)
					if b, ok := last[k].([]byte); ok {
						last[k] = string(b)
					}
				}
				lk, _ := json.Marshal(last)
				c.lastKey = string(lk)
			}
		}
		if c.lastKey == "" && tp.lastKey != nil {
			lk, _ := json.Marshal(tp.lastKey)
			c.lastKey = string(lk)
		}
		select {
		case s.windows <- windowReq{close: c}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select { // one chunk in memory at a time
		case ok := <-c.emitted:
			if !ok { // a DDL of the table fell in the window: read the chunk again
				if retries++; retries > 10 {
					return fmt.Errorf("snapshot of %s: the table kept changing shape while a chunk was read", tp.id)
				}
				last = prev
				continue
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		retries = 0
		if c.done {
			return nil
		}
	}
}

// numericDefault is a number as information_schema shows a numeric DEFAULT.
var numericDefault = regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)

// defaultSpec reads information_schema's COLUMN_DEFAULT (nil: none) and
// EXTRA as what the rows already there hold (fillSpec): MariaDB quotes a
// string literal and shows an expression as its text; MySQL shows the value
// as it is and marks an expression DEFAULT_GENERATED. The current DEFAULT is
// the one the rows got unless it was changed since the column was added (the
// binlog's ALTER, when the stream reads it, says which).
func defaultSpec(flavor string, def *string, extra string, nullable bool) fillSpec {
	if def == nil {
		if nullable {
			return fillSpec{}
		}
		return fillSpec{Implicit: true}
	}
	v := *def
	expression := fillSpec{Unknown: "is an expression the server evaluated when the column was added (" + v + ")"}
	if flavor == gmysql.MariaDBFlavor {
		switch {
		case v == "NULL":
			return fillSpec{}
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			return fillSpec{Literal: &literal{Bytes: []byte(strings.ReplaceAll(v[1:len(v)-1], "''", "'"))}}
		case numericDefault.MatchString(v):
			return fillSpec{Literal: &literal{Bytes: []byte(v), Number: true}}
		}
		return expression
	}
	if strings.Contains(strings.ToUpper(extra), "DEFAULT_GENERATED") {
		return expression
	}
	if numericDefault.MatchString(v) {
		return fillSpec{Literal: &literal{Bytes: []byte(v), Number: true}}
	}
	return fillSpec{Literal: &literal{Bytes: []byte(v)}}
}
