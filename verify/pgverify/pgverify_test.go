package pgverify

import (
	"context"
	"fmt"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/verify"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// pair opens the source side on table src and the destination side on dst
// (live rows: NOT deleted) of one database.
func pair(t *testing.T, dsn string) (verify.Side, verify.Side) {
	ctx := context.Background()
	src, err := Open(ctx, dsn, func(t *verify.Table) (string, string, error) { return pgx.Identifier{"src"}.Sanitize(), "", nil })
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	dst, err := Open(ctx, dsn, func(t *verify.Table) (string, string, error) {
		return pgx.Identifier{"dst"}.Sanitize(), "NOT deleted", nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { dst.Close() })
	return src, dst
}

// TestCompareFindsExactlyThePlantedKeys: of 100,000 rows, the keys planted
// missing, extra and different are found exactly, by bisection (far fewer
// rows compared key by key than the table holds), for an integer key and for
// a composite text key.
func TestCompareFindsExactlyThePlantedKeys(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "v")
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)

	for _, composite := range []bool{false, true} {
		t.Run(fmt.Sprintf("composite=%v", composite), func(t *testing.T) {
			key := "id bigint PRIMARY KEY"
			keyExpr := "g"
			tbl := schema.Table{ID: schema.TableID{Namespace: "public", Name: "t"}, PrimaryKey: []string{"id"}, Columns: []schema.Column{
				{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
				{Name: "v", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
				{Name: "n", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, Nullable: true},
			}}
			if composite {
				key = "id text, sub int, PRIMARY KEY (id, sub)"
				keyExpr = "'k' || (g / 7), g % 7"
				tbl.PrimaryKey = []string{"id", "sub"}
				tbl.Columns[0].Type = schema.Type{Kind: schema.KindString, Name: "text"}
				tbl.Columns = append(tbl.Columns, schema.Column{Name: "sub", Type: schema.Type{Kind: schema.KindInt, Name: "int4"}})
			}
			_, err = conn.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS src, dst;
				CREATE TABLE src (%[1]s, v text, n numeric);
				CREATE TABLE dst (%[1]s, v text, n numeric(20,4), deleted boolean NOT NULL DEFAULT false);
				INSERT INTO src SELECT %[2]s, 'v' || g, g / 3.0 FROM generate_series(1, 100000) g;
				INSERT INTO dst SELECT %[2]s, 'v' || g, g / 3.0, false FROM generate_series(1, 100000) g;
				UPDATE dst SET n = round(n, 4);
				UPDATE src SET n = round(n, 4)`, key, keyExpr))
			require.NoError(t, err)
			where := func(gs ...int) string {
				s := ""
				for i, g := range gs {
					if i > 0 {
						s += " OR "
					}
					if composite {
						s += fmt.Sprintf("(id = 'k%d' AND sub = %d)", g/7, g%7)
					} else {
						s += fmt.Sprintf("id = %d", g)
					}
				}
				return s
			}
			for _, q := range []string{
				`DELETE FROM dst WHERE ` + where(10, 50000, 99999),
				`UPDATE dst SET deleted = true WHERE ` + where(777),
				`UPDATE dst SET v = 'x' WHERE ` + where(20, 60000),
				`UPDATE dst SET n = NULL WHERE ` + where(30),
				`DELETE FROM src WHERE ` + where(40, 41),
			} {
				_, err := conn.Exec(ctx, q)
				require.NoError(t, err, q)
			}
			plan, err := verify.Plan(tbl)
			require.NoError(t, err)
			src, dst := pair(t, dsn)
			res := verify.Compare(ctx, src, dst, plan, verify.Options{})
			require.Empty(t, res.Error)
			require.Equal(t, verify.StatusDifferent, res.Status)
			require.EqualValues(t, 4, res.Missing, "%+v", res.Samples)
			require.EqualValues(t, 2, res.Extra, "%+v", res.Samples)
			require.EqualValues(t, 3, res.Different, "%+v", res.Samples)
			require.EqualValues(t, 99998, res.SourceRows)
			require.EqualValues(t, 99999-3, res.DestRows)
			require.Less(t, res.Ranges, 400, "bisected, not compared whole")
			t.Logf("%d ranges checksummed; %d bytes with the source, %d with the destination", res.Ranges, src.Bytes(), dst.Bytes())
			require.Less(t, src.Bytes()+dst.Bytes(), int64(2<<20), "keys, hashes and counts only")

			_, err = conn.Exec(ctx, `DELETE FROM dst; INSERT INTO dst SELECT *, false FROM src`)
			require.NoError(t, err)
			res = verify.Compare(ctx, src, dst, plan, verify.Options{})
			require.Equal(t, verify.StatusEqual, res.Status, "%+v", res)
			require.Equal(t, 1, res.Ranges)
		})
	}
}
