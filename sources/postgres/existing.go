package postgres

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/jackc/pgx/v5/pgxpool"
)

// existingValues reads, for each column of relation relid, what the rows the
// table held when the column was added hold in it (schema.Existing). Postgres
// keeps a constant default of ADD COLUMN as attmissingval and reads it for the
// tuples written before, and the WAL carries nothing for them. A default
// Postgres had to evaluate per row (a volatile one, an identity or serial
// column) rewrote the table instead, which the WAL does not decode either:
// those values are unknown. A column with neither holds NULL there (nil).
//
// The catalog is read as it is now, which may be later than the Relation
// message being handled: a column no longer there under its name is unknown
// when the catalog has columns the message does not (a rename, maybe), and
// logged and left NULL when it has none (dropped since); so is one whose
// table was rewritten since (the missing value is then gone from the catalog
// and sits in the rows).
func existingValues(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool, types *typeCache, relid uint32, names []string, oids []uint32) (map[string]*schema.Existing, error) {
	attrs, err := readAttrDefaults(ctx, pool, []uint32{relid})
	if err != nil {
		return nil, err
	}
	return existingFrom(log, types, relid, attrs[relid], names, oids)
}

// attrDefault is what the catalog says of a column's value in the rows there
// before it was added.
type attrDefault struct {
	missing                           *string
	hasMissing, def, ident, domainDef bool
}

// readAttrDefaults reads attrDefault of every column of the relations, in
// one query.
func readAttrDefaults(ctx context.Context, pool *pgxpool.Pool, relids []uint32) (map[uint32]map[string]attrDefault, error) {
	rows, err := pool.Query(ctx, `SELECT a.attrelid, a.attname, a.atthasmissing, CASE WHEN a.atthasmissing THEN array_to_string(a.attmissingval, '') END,
			d.adbin IS NOT NULL, a.attidentity <> '', ty.typtype = 'd' AND ty.typdefaultbin IS NOT NULL
		FROM pg_attribute a
		JOIN pg_type ty ON ty.oid = a.atttypid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped`, relids)
	if err != nil {
		return nil, fmt.Errorf("read the column defaults: %w", err)
	}
	defer rows.Close()
	out := map[uint32]map[string]attrDefault{}
	for rows.Next() {
		var rel uint32
		var name string
		var a attrDefault
		if err := rows.Scan(&rel, &name, &a.hasMissing, &a.missing, &a.def, &a.ident, &a.domainDef); err != nil {
			return nil, err
		}
		if out[rel] == nil {
			out[rel] = map[string]attrDefault{}
		}
		out[rel][name] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the column defaults: %w", err)
	}
	return out, nil
}

// existingFrom is existingValues of relation relid, from its columns' byName.
func existingFrom(log *slog.Logger, types *typeCache, relid uint32, byName map[string]attrDefault, names []string, oids []uint32) (map[string]*schema.Existing, error) {
	// columns of the catalog the Relation message does not have: added or
	// renamed since it was sent
	newer := len(byName)
	for _, name := range names {
		if _, ok := byName[name]; ok {
			newer--
		}
	}
	out := map[string]*schema.Existing{}
	for i, name := range names {
		a, ok := byName[name]
		switch {
		case !ok && newer == 0:
			// dropped since: the column is gone at the source, and what the
			// destination keeps of it is history, NULL for these rows
			log.Warn("a column of the Relation message is no longer in the catalog (dropped since); the value of the rows that were there when it was added is unknown and stays NULL at the destination",
				"relation", relid, "column", name)
		case !ok:
			out[name] = &schema.Existing{Unknown: "the column is no longer in the catalog under that name: renamed or dropped since"}
		case a.hasMissing && a.missing != nil:
			v, err := types.decodeText(oids[i], []byte(*a.missing))
			if err != nil {
				return nil, fmt.Errorf("column %s of relation %d: the value of its older rows: %w", name, relid, err)
			}
			out[name] = &schema.Existing{Value: v}
		case a.ident:
			out[name] = &schema.Existing{Unknown: "an identity column: Postgres numbered the rows already there"}
		case a.def:
			out[name] = &schema.Existing{Unknown: "its default is not a constant Postgres keeps for them: a volatile default (random(), clock_timestamp(), a sequence) computed per row, or the table was rewritten since"}
		case a.domainDef:
			out[name] = &schema.Existing{Unknown: "its type is a domain with a default, which Postgres may have computed per row"}
		}
	}
	return out, nil
}
