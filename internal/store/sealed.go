package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/secrets"
)

// sealedColumn is a column whose values are sealed at rest, each bound to its
// row: the additional data names the table, the column and the row's key, so a
// value copied to another row, or another column, does not open.
type sealedColumn struct {
	table, column string
	key           []string
}

// The sealed columns: every place the store keeps secrets or row data.
var (
	connConfig   = sealedColumn{"cdcd_connections", "config", []string{"name"}}
	pipelineSpec = sealedColumn{"cdcd_pipelines", "spec", []string{"name"}}
	holdProposal = sealedColumn{"cdcd_holds", "proposal", []string{"pipeline", "namespace", "name"}}
	heldEntry    = sealedColumn{"cdcd_held_changes", "entry", []string{"pipeline", "namespace", "name", "seq"}}

	sealedColumns = []sealedColumn{connConfig, pipelineSpec, holdProposal, heldEntry}
)

// aad is the additional data of the value at the row with the key values.
func (c sealedColumn) aad(key ...any) string {
	parts := make([]string, 0, len(key)+1)
	parts = append(parts, c.table+"."+c.column)
	for _, k := range key {
		parts = append(parts, fmt.Sprint(k))
	}
	return strings.Join(parts, "\x00")
}

func (s *sqlStore) seal(c sealedColumn, plaintext []byte, key ...any) string {
	return s.cipher.Seal(plaintext, c.aad(key...))
}

func (s *sqlStore) open(c sealedColumn, sealed string, key ...any) ([]byte, error) {
	return s.cipher.Open(sealed, c.aad(key...))
}

// reseal seals every value of the sealed columns again in one transaction:
// with to (a new key) when given, else with the store's own key, and then only
// the values of the first format (no key id, no row binding). from opens them.
// It returns how many values it sealed.
func (s *sqlStore) reseal(ctx context.Context, from, to *secrets.Cipher, legacyOnly bool) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, c := range sealedColumns {
			keys := strings.Join(c.key, ", ")
			q := `SELECT ` + keys + `, ` + c.column + ` FROM ` + c.table
			if legacyOnly {
				q += ` WHERE ` + c.column + ` LIKE 'v1:%'`
			}
			rows, err := tx.QueryContext(ctx, q)
			if err != nil {
				return fmt.Errorf("read %s.%s: %w", c.table, c.column, err)
			}
			type row struct {
				key    []any
				sealed string
			}
			var all []row
			for rows.Next() {
				r := row{key: make([]any, len(c.key))}
				dest := make([]any, len(c.key)+1)
				for i := range c.key {
					dest[i] = &r.key[i]
				}
				dest[len(c.key)] = &r.sealed
				if err := rows.Scan(dest...); err != nil {
					rows.Close()
					return err
				}
				all = append(all, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			where := make([]string, len(c.key))
			for i, k := range c.key {
				where[i] = k + " = ?"
			}
			update := s.q(`UPDATE ` + c.table + ` SET ` + c.column + ` = ? WHERE ` + strings.Join(where, " AND "))
			for _, r := range all {
				key := make([]any, len(r.key))
				for i, k := range r.key {
					key[i] = normalizeKey(k)
				}
				var pt []byte
				if secrets.KeyIDOf(r.sealed) == "" {
					pt, err = from.OpenLegacy(r.sealed)
				} else {
					pt, err = from.Open(r.sealed, c.aad(key...))
				}
				if err != nil {
					return fmt.Errorf("%s.%s of %v: %w", c.table, c.column, key, err)
				}
				sealed := to.Seal(pt, c.aad(key...))
				if _, err := tx.ExecContext(ctx, update, append([]any{sealed}, key...)...); err != nil {
					return fmt.Errorf("seal %s.%s of %v again: %w", c.table, c.column, key, err)
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// normalizeKey turns a scanned key value into the form the row was sealed with
// (drivers scan text as []byte or string, integers as int64).
func normalizeKey(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// upgradeSealed seals values of the first format again, bound to their rows.
func (s *sqlStore) upgradeSealed(ctx context.Context) error {
	if _, err := s.reseal(ctx, s.cipher, s.cipher, true); err != nil {
		return fmt.Errorf("upgrade stored secrets: %w", err)
	}
	return nil
}

// Rekey seals every stored secret again under to's key in one transaction
// (the store keeps using its own key afterwards: reopen it with to's). It
// returns how many values it sealed. Every cdcd process using the store must
// be stopped, as they cannot open what is sealed under a key they do not have.
func (s *sqlStore) Rekey(ctx context.Context, to *secrets.Cipher) (int, error) {
	return s.reseal(ctx, s.cipher, to, false)
}

// KeyIDs returns the ids of the keys the stored secrets are sealed under.
func (s *sqlStore) KeyIDs(ctx context.Context) ([]string, error) {
	var ids []string
	for _, c := range sealedColumns {
		rows, err := s.db.QueryContext(ctx, `SELECT `+c.column+` FROM `+c.table)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, err
			}
			if id := secrets.KeyIDOf(v); !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Keys is the store's handling of the key that seals what it keeps.
type Keys interface {
	// Rekey seals every stored secret again under to's key, in one transaction.
	Rekey(ctx context.Context, to *secrets.Cipher) (int, error)
	// KeyIDs returns the ids of the keys stored secrets are sealed under.
	KeyIDs(ctx context.Context) ([]string, error)
}
