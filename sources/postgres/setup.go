package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tableInfo is what the source knows of one configured table.
type tableInfo struct {
	ID          schema.TableID
	OID         uint32
	Partitioned bool
	Identity    byte // relreplident: d default, f full, i index, n nothing
	Columns     []columnInfo
	PK          []string
	Leaves      []uint32 // partitioned: the leaf partitions, scanned by the snapshot
	EstRows     int64
	Toast       []string // columns that may be TOASTed (varlena, not plain storage)
	// CanSelect, Owned and Owner are the role's rights on the table: SELECT
	// (the snapshot reads it), ownership (adding it to a publication needs
	// it) and who owns it
	CanSelect, Owned bool
	Owner            string
	// Existing is what the rows there when each column was added hold in it
	// (existingValues), read at Open: a snapshot that starts after an ADD
	// COLUMN … DEFAULT announces the column with its fill, as the stream
	// would
	Existing map[string]*schema.Existing
	// view is the version a resumed snapshot registered from the catalog
	// ahead of the stream (nil: the stream is never behind the registry)
	view *catalogView
}

type columnInfo struct {
	Name    string
	Type    uint32
	Typmod  int32
	NotNull bool
}

// shape returns the schema model of t.
func (t *tableInfo) shape(types *typeCache) schema.Table {
	out := schema.Table{ID: t.ID, PrimaryKey: slices.Clone(t.PK)}
	for _, c := range t.Columns {
		out.Columns = append(out.Columns, schema.Column{Name: c.Name, Type: types.columnType(c.Type, c.Typmod), Nullable: !c.NotNull,
			Existing: t.Existing[c.Name]})
	}
	return out
}

// quoted returns the table's name quoted for SQL.
func quoted(id schema.TableID) string { return pgx.Identifier{id.Namespace, id.Name}.Sanitize() }

// quotedColumns returns t's column names quoted, in order.
func (t *tableInfo) quotedColumns() []string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	return cols
}

func connConfig(dsn string, replication bool) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %s", redact.Text(err.Error()))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	cfg.RuntimeParams["application_name"] = "cdcd"
	return cfg, nil
}

func openPool(ctx context.Context, dsn string, size int, dial ...pgconn.DialFunc) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %s", redact.Text(err.Error()))
	}
	for k, v := range sessionParams {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "cdcd"
	// No cached plans: a source's tables change shape under it (ALTER TABLE), and a
	// cached plan would fail with "cached plan must not change result type".
	pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	pc.MaxConns = int32(size)
	for _, d := range dial {
		pc.ConnConfig.DialFunc = d
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, classify(fmt.Errorf("connect: %w", err))
	}
	return pool, nil
}

// loadTables reads the catalog of ids in a constant number of queries,
// whatever their number: the tables (with the role's SELECT privilege and
// ownership), their columns, the columns' types, their primary keys and the
// leaves of the partitioned ones. Missing tables and tables that cannot be
// replicated are permanent errors, all of them at once.
func loadTables(ctx context.Context, pool *pgxpool.Pool, ids []schema.TableID, types *typeCache) ([]*tableInfo, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	nss, names := make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		nss[i], names[i] = id.Namespace, id.Name
	}
	rows, err := pool.Query(ctx, `SELECT n.nspname, c.relname, c.oid, c.relkind, c.relreplident,
			CASE WHEN c.reltuples < 0 OR (c.reltuples = 0 AND c.relpages > 0) THEN -1 ELSE c.reltuples::int8 END,
			pg_catalog.has_table_privilege(c.oid, 'SELECT'), pg_catalog.pg_has_role(c.relowner, 'USAGE'), pg_catalog.pg_get_userbyid(c.relowner)
		FROM unnest($1::text[], $2::text[]) AS w(nsp, rel)
		JOIN pg_catalog.pg_namespace n ON n.nspname = w.nsp
		JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel
		WHERE c.relkind IN ('r', 'p')`, nss, names)
	if err != nil {
		return nil, classify(fmt.Errorf("read the catalog of the tables: %w", err))
	}
	byID := map[schema.TableID]*tableInfo{}
	byOID := map[uint32]*tableInfo{}
	var oids []uint32
	for rows.Next() {
		t := &tableInfo{}
		var kind, ident string
		if err := rows.Scan(&t.ID.Namespace, &t.ID.Name, &t.OID, &kind, &ident, &t.EstRows, &t.CanSelect, &t.Owned, &t.Owner); err != nil {
			rows.Close()
			return nil, classify(fmt.Errorf("read the catalog of the tables: %w", err))
		}
		t.Partitioned, t.Identity = kind == "p", ident[0]
		byID[t.ID], byOID[t.OID] = t, t
		oids = append(oids, t.OID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read the catalog of the tables: %w", err))
	}
	if len(oids) > 0 {
		crows, err := pool.Query(ctx, `SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
				a.attstorage <> 'p' AND a.attlen = -1
			FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
			ORDER BY a.attrelid, a.attnum`, oids)
		if err != nil {
			return nil, classify(fmt.Errorf("read the columns of the tables: %w", err))
		}
		var typeOIDs []uint32
		for crows.Next() {
			var rel uint32
			var c columnInfo
			var toastable bool
			if err := crows.Scan(&rel, &c.Name, &c.Type, &c.Typmod, &c.NotNull, &toastable); err != nil {
				crows.Close()
				return nil, classify(fmt.Errorf("read the columns of the tables: %w", err))
			}
			t := byOID[rel]
			if toastable {
				t.Toast = append(t.Toast, c.Name)
			}
			t.Columns = append(t.Columns, c)
			typeOIDs = append(typeOIDs, c.Type)
		}
		crows.Close()
		if err := crows.Err(); err != nil {
			return nil, classify(fmt.Errorf("read the columns of the tables: %w", err))
		}
		if err := types.load(ctx, pool, typeOIDs...); err != nil {
			return nil, classify(fmt.Errorf("read the column types: %w", err))
		}
		if err := eachRow(ctx, pool, `SELECT i.indrelid, a.attname FROM pg_catalog.pg_index i
				JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
				JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = ANY($1) AND i.indisprimary ORDER BY i.indrelid, k.ord`, oids, func(rel uint32, col string) {
			byOID[rel].PK = append(byOID[rel].PK, col)
		}); err != nil {
			return nil, classify(fmt.Errorf("read the primary keys: %w", err))
		}
		var roots []uint32
		for _, o := range oids {
			if byOID[o].Partitioned {
				roots = append(roots, o)
			}
		}
		if len(roots) > 0 {
			if err := eachRow(ctx, pool, `SELECT r.root, t.relid::oid FROM unnest($1::oid[]) AS r(root), LATERAL pg_catalog.pg_partition_tree(r.root) t
					WHERE t.isleaf ORDER BY r.root, t.relid`, roots, func(rel uint32, leaf uint32) {
				byOID[rel].Leaves = append(byOID[rel].Leaves, leaf)
			}); err != nil {
				return nil, classify(fmt.Errorf("read the partitions: %w", err))
			}
		}
	}
	var out []*tableInfo
	var errs []error
	for _, id := range ids {
		t := byID[id]
		switch {
		case t == nil:
			errs = append(errs, fmt.Errorf("table %s does not exist (or is not a table); check the name in tables or create it", id))
			continue
		case len(t.PK) == 0 && t.Identity != 'f':
			errs = append(errs, fmt.Errorf("table %s has no primary key: add one, or run ALTER TABLE %s REPLICA IDENTITY FULL so that updates and deletes can be matched by all columns", id, quoted(id)))
			continue
		case len(t.PK) == 0:
			for _, c := range t.Columns {
				t.PK = append(t.PK, c.Name)
			}
		}
		out = append(out, t)
	}
	return out, component.Permanent(errors.Join(errs...))
}

// eachRow runs a query of two columns, the first a relation's oid, with the
// relations' oids as its argument, and hands each row to f.
func eachRow[T any](ctx context.Context, pool *pgxpool.Pool, sql string, oids []uint32, f func(uint32, T)) error {
	rows, err := pool.Query(ctx, sql, oids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var rel uint32
		var v T
		if err := rows.Scan(&rel, &v); err != nil {
			return err
		}
		f(rel, v)
	}
	return rows.Err()
}

// ensurePublication creates the pipeline's publication listing its tables, or
// returns the configured tables an existing one does not list yet (tables added
// to the pipeline). It runs before the slot is created: pgoutput resolves
// membership with the catalog as of each WAL record.
func ensurePublication(ctx context.Context, pool *pgxpool.Pool, name string, tables []*tableInfo) ([]*tableInfo, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read publication %s: %w", name, err)
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = quoted(t.ID)
	}
	if !exists {
		_, err := pool.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true)",
			pgx.Identifier{name}.Sanitize(), strings.Join(names, ", ")))
		if err != nil {
			return nil, classify(fmt.Errorf("create publication %s: %w (the role needs CREATE on the database and ownership of the tables)", name, err))
		}
		return nil, nil
	}
	rows, err := pool.Query(ctx, `SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("read publication %s: %w", name, err)
	}
	have := map[schema.TableID]bool{}
	for rows.Next() {
		var id schema.TableID
		if err := rows.Scan(&id.Namespace, &id.Name); err != nil {
			rows.Close()
			return nil, err
		}
		have[id] = true
	}
	rows.Close()
	var missing []*tableInfo
	for _, t := range tables {
		if !have[t.ID] {
			missing = append(missing, t)
		}
		delete(have, t.ID)
	}
	var mine bool
	if err := pool.QueryRow(ctx, `SELECT pg_catalog.pg_has_role(pubowner, 'USAGE') FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&mine); err != nil {
		return nil, fmt.Errorf("read publication %s: %w", name, err)
	}
	if !mine {
		// a DBA's publication: used as it is (its other tables' changes are
		// skipped by the stream); tables it lacks are the check's to report
		return missing, nil
	}
	// tables no longer in the pipeline leave the publication (their changes
	// already in the WAL are skipped by the stream)
	for id := range have {
		if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER PUBLICATION %s DROP TABLE %s", pgx.Identifier{name}.Sanitize(), quoted(id))); err != nil {
			return nil, classify(fmt.Errorf("remove %s from publication %s: %w", id, name, err))
		}
	}
	return missing, nil
}

// slotInfo is a row of pg_replication_slots.
type slotInfo struct {
	Exists         bool
	Plugin         string
	WALStatus      string
	ConfirmedFlush pglogrepl.LSN
	RetainedBytes  int64
	SafeWALSize    *int64
	ActivePID      *int32
}

func readSlot(ctx context.Context, pool *pgxpool.Pool, slot string) (slotInfo, error) {
	var s slotInfo
	var confirmed *string
	err := pool.QueryRow(ctx, `SELECT plugin, COALESCE(wal_status, ''), confirmed_flush_lsn::text,
			COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8, safe_wal_size, active_pid
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, slot).
		Scan(&s.Plugin, &s.WALStatus, &confirmed, &s.RetainedBytes, &s.SafeWALSize, &s.ActivePID)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read slot %s: %w", slot, err)
	}
	s.Exists = true
	if confirmed != nil {
		if s.ConfirmedFlush, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Check connects and reports every setup problem in words a user can act on
// (the connections `test` action). The problems are permanent errors.
func (s *Source) Check(ctx context.Context) error { return s.check(ctx, false) }

// CheckServer implements sources.ServerChecker: Check without the tables.
func (s *Source) CheckServer(ctx context.Context) error { return s.checkTables(ctx, false, nil) }

// check runs the setup checks; at pipeline start (starting) a lost slot is left
// to Open, which reports it as needs-resync.
func (s *Source) check(ctx context.Context, starting bool) error {
	return s.checkTables(ctx, starting, s.cfg.tables)
}

// manySlots is how many other logical slots on the database make the checks
// warn that each decodes all of its WAL.
const manySlots = 3

// checkTables checks the server, and the tables given.
func (s *Source) checkTables(ctx context.Context, starting bool, only []schema.TableID) error {
	pool, err := openPool(ctx, s.cfg.DSN, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	var errs []error
	var warnings []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	defer func() {
		s.mu.Lock()
		s.warnings = warnings
		s.mu.Unlock()
	}()
	var walLevel string
	var maxSlots, usedSlots, maxSenders, usedSenders int
	var keep string
	var canReplicate bool
	err = pool.QueryRow(ctx, `SELECT current_setting('wal_level'),
			current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
			current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_catalog.pg_stat_replication)::int,
			current_setting('max_slot_wal_keep_size'),
			(SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)`).
		Scan(&walLevel, &maxSlots, &usedSlots, &maxSenders, &usedSenders, &keep, &canReplicate)
	if err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	if walLevel != "logical" {
		bad("wal_level is %q: set wal_level = logical in postgresql.conf (or the cloud parameter group, e.g. rds.logical_replication = 1) and restart Postgres", walLevel)
	}
	if !canReplicate {
		bad("the role cannot replicate: run ALTER ROLE <user> WITH REPLICATION (on RDS: GRANT rds_replication TO <user>)")
	}
	slot, err := readSlot(ctx, pool, s.cfg.Slot)
	if err != nil {
		return err
	}
	if !slot.Exists && usedSlots >= maxSlots {
		bad("no free replication slot (%d of max_replication_slots = %d in use): raise max_replication_slots or drop unused slots", usedSlots, maxSlots)
	}
	if usedSenders >= maxSenders {
		bad("no free WAL sender (%d of max_wal_senders = %d in use): raise max_wal_senders", usedSenders, maxSenders)
	}
	if slot.Exists && slot.WALStatus == "lost" && !starting {
		bad("replication slot %s has lost WAL it needs (wal_status = lost): the pipeline must be resynced", s.cfg.Slot)
	}
	// every logical slot of this database decodes all of its WAL: N
	// pipelines on one database cost the server N decodings
	var others []string
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(slot_name::text ORDER BY slot_name), '{}') FROM pg_catalog.pg_replication_slots
			WHERE slot_type = 'logical' AND database = current_database() AND slot_name <> $1`, s.cfg.Slot).Scan(&others); err != nil {
		return fmt.Errorf("read the replication slots: %w", err)
	}
	if len(others) >= manySlots {
		shown := others[:min(len(others), 5)]
		more := ""
		if len(others) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(others)-len(shown))
		}
		warn("%d other logical replication slots decode this database's WAL (%s%s): each slot decodes all of it, whatever its tables, so N pipelines on one database cost the server N decodings "+
			"(measured: 20 one-table pipelines reach 73k changes/s in total, one pipeline with the 20 tables 251k); put the tables of one database in one pipeline where you can (docs/benchmarks.md)",
			len(others), strings.Join(shown, ", "), more)
	}
	if keep == "-1" {
		warn("max_slot_wal_keep_size is unlimited: a stopped or stuck pipeline's slot keeps WAL until the source's disk fills; set it (e.g. 100GB) so that the server invalidates the slot first (the pipeline then needs a resync)")
	}
	var tables []*tableInfo
	if len(only) > 0 {
		if tables, err = loadTables(ctx, pool, only, newTypeCache()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range tables {
		if !t.CanSelect {
			bad("the role cannot SELECT from %s: GRANT SELECT ON %s TO <user>", t.ID, quoted(t.ID))
		}
		if len(t.Toast) > 0 && t.Identity != 'f' {
			warn("table %s has TOAST-able columns (%s) without REPLICA IDENTITY FULL: an update that leaves them unchanged sends no value; cdcd marks them unchanged and sinks keep the stored value, but the file sink and insert-only consumers see no value: ALTER TABLE %s REPLICA IDENTITY FULL if that matters",
				t.ID, strings.Join(t.Toast, ", "), quoted(t.ID))
		}
	}
	if len(tables) > 0 {
		for _, p := range publicationProblems(ctx, pool, s.cfg.Publication, tables) {
			bad("%s", p)
		}
	}
	if len(errs) > 0 {
		return permanent(errors.Join(errs...))
	}
	return nil
}

// Leftover implements sources.Cleaner.
func (s *Source) Leftover() component.Leftover {
	if s.cfg.KeepSlotOnDelete {
		return component.Leftover{}
	}
	return component.Leftover{
		What: fmt.Sprintf("replication slot %s and publication %s (unless a DBA made it) on the source: the slot retains WAL until it is dropped", s.cfg.Slot, s.cfg.Publication),
		// a walsender left over from the pipeline may still hold the slot
		SQL: fmt.Sprintf("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %[1]s AND active_pid IS NOT NULL; SELECT pg_drop_replication_slot(%[1]s); DROP PUBLICATION IF EXISTS %[2]s;",
			pgLiteral(s.cfg.Slot), pgx.Identifier{s.cfg.Publication}.Sanitize()),
	}
}

// pgLiteral quotes a string literal (a name from config, for a statement a
// person runs).
func pgLiteral(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// Cleanup drops the pipeline's slot and publication (pipeline deletion), unless
// keep_slot_on_delete is set. A slot still in use by a walsender is terminated first.
func (s *Source) Cleanup(ctx context.Context) error {
	if s.cfg.KeepSlotOnDelete {
		return nil
	}
	pool, err := openPool(ctx, s.cfg.DSN, 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, s.cfg.Slot); err != nil {
		return fmt.Errorf("stop the slot's walsender: %w", err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot); err != nil {
		return fmt.Errorf("drop replication slot %s: %w", s.cfg.Slot, err)
	}
	var mine bool
	err = pool.QueryRow(ctx, `SELECT pg_catalog.pg_has_role(pubowner, 'USAGE') FROM pg_catalog.pg_publication WHERE pubname = $1`, s.cfg.Publication).Scan(&mine)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !mine) {
		return nil // gone, or a DBA's publication: theirs to drop
	}
	if err != nil {
		return fmt.Errorf("read publication %s: %w", s.cfg.Publication, err)
	}
	if _, err := pool.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{s.cfg.Publication}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", s.cfg.Publication, err)
	}
	return nil
}

// Sample reads up to limit rows of one table (any table the role can read, not
// only the configured ones) with the snapshot's decoding, for previews.
func (s *Source) Sample(ctx context.Context, id schema.TableID, limit int) (schema.Table, []schema.Row, error) {
	pool, err := openPool(ctx, s.cfg.DSN, 1)
	if err != nil {
		return schema.Table{}, nil, err
	}
	defer pool.Close()
	types := newTypeCache()
	ts, err := loadTables(ctx, pool, []schema.TableID{id}, types)
	if err != nil {
		return schema.Table{}, nil, err
	}
	t := ts[0]
	cols := t.quotedColumns()
	rows, err := pool.Query(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT $1", strings.Join(cols, ", "), quoted(id)),
		pgx.QueryResultFormats{pgx.TextFormatCode}, limit)
	if err != nil {
		return schema.Table{}, nil, fmt.Errorf("read %s: %w", id, err)
	}
	defer rows.Close()
	var out []schema.Row
	for rows.Next() {
		r, err := types.decodeRow(t, rows.RawValues())
		if err != nil {
			return schema.Table{}, nil, fmt.Errorf("read %s, %w", id, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return schema.Table{}, nil, fmt.Errorf("read %s: %w", id, err)
	}
	return t.shape(types), out, nil
}

// publicationProblems says what keeps the role from making or using the
// pipeline's publication for tables, with the statement to run. cdcd creates
// the publication when it does not exist (CREATE on the database, and, as for
// every ALTER PUBLICATION … ADD TABLE, ownership of each table); a
// publication a DBA created beforehand, owned by another role, is used as it
// is when it holds every table: the role then needs neither.
func publicationProblems(ctx context.Context, pool *pgxpool.Pool, pub string, tables []*tableInfo) []string {
	var out []string
	var exists, mine bool
	err := pool.QueryRow(ctx, `SELECT true, pg_catalog.pg_has_role(pubowner, 'USAGE') FROM pg_catalog.pg_publication WHERE pubname = $1`, pub).Scan(&exists, &mine)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return []string{fmt.Sprintf("read publication %s: %v", pub, err)}
	}
	quotedPub := pgx.Identifier{pub}.Sanitize()
	var missing []*tableInfo
	if exists {
		have := map[schema.TableID]bool{}
		rows, err := pool.Query(ctx, `SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, pub)
		if err != nil {
			return []string{fmt.Sprintf("read publication %s: %v", pub, err)}
		}
		for rows.Next() {
			var id schema.TableID
			if err := rows.Scan(&id.Namespace, &id.Name); err == nil {
				have[id] = true
			}
		}
		rows.Close()
		for _, t := range tables {
			if !have[t.ID] {
				missing = append(missing, t)
			}
		}
		if len(missing) == 0 {
			return nil // used as it is
		}
	} else {
		missing = tables
		var canCreate bool
		if err := pool.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'CREATE')`).Scan(&canCreate); err != nil {
			return []string{fmt.Sprintf("read the role's privileges: %v", err)}
		}
		if !canCreate {
			out = append(out, fmt.Sprintf("the role cannot create publication %s: GRANT CREATE ON DATABASE %s TO <user>, or have a DBA create it beforehand: %s",
				pub, pgx.Identifier{databaseName(ctx, pool)}.Sanitize(), createPublicationSQL(quotedPub, tables)))
		}
	}
	if exists && !mine {
		names := make([]string, len(missing))
		for i, t := range missing {
			names[i] = quoted(t.ID)
		}
		return append(out, fmt.Sprintf("publication %s belongs to another role and lacks %s: have its owner run ALTER PUBLICATION %s ADD TABLE %s",
			pub, strings.Join(names, ", "), quotedPub, strings.Join(names, ", ")))
	}
	// creating the publication, or adding tables to it, needs their ownership
	var notOwned []string
	for _, t := range missing {
		if !t.Owned {
			notOwned = append(notOwned, fmt.Sprintf("%s (owned by %s)", t.ID, t.Owner))
		}
	}
	if len(notOwned) > 0 {
		verb := fmt.Sprintf("have a DBA create it beforehand, and cdcd uses it as it is: %s", createPublicationSQL(quotedPub, tables))
		if exists {
			names := make([]string, len(missing))
			for i, t := range missing {
				names[i] = quoted(t.ID)
			}
			verb = fmt.Sprintf("have a table owner run ALTER PUBLICATION %s ADD TABLE %s", quotedPub, strings.Join(names, ", "))
		}
		out = append(out, fmt.Sprintf("publication %s needs the tables' owner to add them, and the role does not own %s: %s",
			pub, strings.Join(notOwned, ", "), verb))
	}
	return out
}

func createPublicationSQL(quotedPub string, tables []*tableInfo) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = quoted(t.ID)
	}
	return fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true)", quotedPub, strings.Join(names, ", "))
}

func databaseName(ctx context.Context, pool *pgxpool.Pool) string {
	var db string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return "<database>"
	}
	return db
}
