package typematrix

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Policies are, per target, the values a sink does not store exactly: stored
// as NULL and counted under on_unrepresentable: null, an error naming table,
// column and position under the default; or, marked Altered, stored as a value
// the destination cannot tell apart from it, under either policy, and counted
// in cdcd_sink_values_altered_total.
var Policies = map[string][]Policy{
	"postgres": join(
		cells("mysql", "c_time", "a MySQL TIME outside 00:00–24:00: time holds a time of day", 1, 2, 4),
		cells("mysql", "c_varchar", "a NUL character: Postgres text cannot hold it", 3),
	),
	"clickhouse": join(
		cells("postgres", "c_date", "outside Date32 (1900-01-01 to 2299-12-31), or infinity", 1, 2, 4, 5, 6, 7),
		cells("postgres", "c_timestamp", "outside the DateTime64 range written exactly (1900-01-01 to 2262-04-11), or infinity", 1, 2, 4, 5, 6),
		cells("postgres", "c_timestamptz", "outside the DateTime64 range written exactly (1900-01-01 to 2262-04-11), or -infinity", 1, 2, 3, 4, 5),
		chArrays(),
		cells("mysql", "c_date", "outside Date32 (1900-01-01 to 2299-12-31)", 0, 1),
		cells("mysql", "c_datetime", "outside the DateTime64 range written exactly (1900-01-01 to 2262-04-11)", 0, 1),
	),
	"snowflake": join(
		cells("postgres", "c_json", "Snowflake's PARSE_JSON refuses duplicate keys", 0),
		cells("postgres", "c_json", "a number VARIANT does not hold exactly (NUMBER(38) or DOUBLE)", 1),
		cells("postgres", "c_jsonb", "a number VARIANT does not hold exactly (NUMBER(38) or DOUBLE)", 1),
		cells("postgres", "c_int4_array_bounds", "explicit bounds: an ARRAY has none", 0),
		[]Policy{jsonNullInArray()},
		cells("postgres", "c_time", "24:00:00: TIME ends at 23:59:59.999999999", 2),
		cells("postgres", "c_date", "a BC date, a year past 9999, or infinity", 4, 5, 6, 7),
		cells("postgres", "c_timestamp", "a BC year, a year past 9999, or infinity", 4, 5, 6),
		cells("postgres", "c_timestamptz", "a BC year or -infinity", 4, 5),
		cells("mysql", "c_time", "a MySQL TIME outside 00:00–24:00, or 24:00:00: TIME holds a time of day", 1, 2, 3, 4),
	),
	"bigquery": join(
		cells("postgres", "c_json", "a number BigQuery's JSON does not hold exactly", 1),
		cells("postgres", "c_jsonb", "a number BigQuery's JSON does not hold exactly", 1),
		cells("postgres", "c_int4_array_bounds", "explicit bounds: a JSON array has none", 0),
		[]Policy{jsonNullInArray()},
		cells("postgres", "c_time", "24:00:00: TIME ends at 23:59:59.999999", 2),
		cells("postgres", "c_date", "a BC date, a year past 9999, or infinity", 4, 5, 6, 7),
		cells("postgres", "c_timestamp", "a BC year, a year past 9999, or infinity", 4, 5, 6),
		cells("postgres", "c_timestamptz", "a BC year or -infinity", 4, 5),
		cells("mysql", "c_time", "a MySQL TIME outside 00:00–24:00, or 24:00:00: TIME holds a time of day", 1, 2, 3, 4),
	),
	"file": {
		jsonNullInArray(),
		{Source: "postgres", Column: "c_json", Cell: 2, Altered: true,
			Why: "JSON is written inline: the JSON value null reads as NULL"},
	},
	"clickhouse-18": join(
		cells("postgres", "c_date", "outside Date (1970-01-01 to 2149-06-06), or infinity", 1, 2, 3, 4, 5, 6, 7),
		chArrays(),
		cells("mysql", "c_date", "outside Date (1970-01-01 to 2149-06-06)", 0, 1),
	),
}

// StandIn are, per target, the values its stand-in cannot store and the real
// service can: they are left out of the run there (written as NULL), and the
// docs say so. A live run (sinks' *_LIVE settings) covers them.
var StandIn = map[string][]Policy{
	"snowflake": join(
		cells("mysql", "c_bigint_unsigned", "fakesnow keeps NUMBER(38,0) as DuckDB's BIGINT: integers above 2^63-1 do not fit", 0, 1),
		cells("mysql", "c_bit64", "fakesnow keeps NUMBER(38,0) as DuckDB's BIGINT: integers above 2^63-1 do not fit", 0),
	),
	"bigquery": join(
		cells("postgres", "c_float4", "the emulator keeps FLOAT64 in SQLite: NaN is NULL there, -0 is 0", 3, 4),
		cells("postgres", "c_float8", "the emulator keeps FLOAT64 in SQLite: NaN is NULL there, -0 is 0", 4, 5),
	),
}

// jsonNullInArray: an array becomes a JSON array at Snowflake and BigQuery,
// where a JSON null element and a NULL element are the same null.
func jsonNullInArray() Policy {
	stored := schema.Array(schema.JSON(`{"a": 1}`), schema.Null())
	return Policy{Source: "postgres", Column: "c_jsonb_array", Cell: 0, Stored: &stored, Altered: true,
		Why: "an array is a JSON array there: a JSON null element reads as NULL"}
}

// jsonNullInArray and the file sink's JSON null: where a value becomes JSON
// text, JSON's one null stands for both.

// chArrays: a ClickHouse Array cannot be NULL, so a NULL array is [] (counted
// as altered), and an array Array(Nullable(T)) cannot hold (two
// dimensions, explicit bounds) is [] and counted.
func chArrays() []Policy {
	empty := schema.Array()
	var out []Policy
	for _, c := range Postgres.Columns {
		if strings.HasSuffix(c.Type, "[]") {
			out = append(out, Policy{Source: "postgres", Column: c.Name, Cell: NullCells, Stored: &empty, Altered: true,
				Why: "a ClickHouse Array cannot be NULL: NULL is stored as []"})
		}
	}
	return append(out,
		Policy{Source: "postgres", Column: "c_int4_array_2d", Cell: 0, Stored: &empty, Why: "two dimensions: Array(Nullable(T)) holds one (stored as [], an Array cannot be NULL)"},
		Policy{Source: "postgres", Column: "c_int4_array_bounds", Cell: 0, Stored: &empty, Why: "explicit bounds: an Array has none (stored as [], an Array cannot be NULL)"})
}

func cells(source, column, why string, idx ...int) []Policy {
	out := make([]Policy, len(idx))
	for i, c := range idx {
		out[i] = Policy{Source: source, Column: column, Cell: c, Why: why}
	}
	return out
}

func join(ps ...[]Policy) []Policy {
	var out []Policy
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

func md5hex(id int) string {
	s := md5.Sum([]byte(strconv.Itoa(id)))
	return hex.EncodeToString(s[:])
}
