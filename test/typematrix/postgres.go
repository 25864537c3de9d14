package typematrix

import (
	"encoding/hex"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Postgres is the Postgres source's matrix table.
var Postgres = Source{
	Name: "postgres",
	Setup: []string{
		`CREATE TYPE mood AS ENUM ('sad', 'happy', 'très 😀')`,
		`CREATE DOMAIN posint AS int4 CHECK (VALUE > 0)`,
		`CREATE TYPE pair AS (x int4, y text)`,
	},
	Columns: []Column{
		{Name: "c_bool", Type: "bool", Cells: []Cell{{SQL: "true", Want: schema.Bool(true)}, {SQL: "false", Want: schema.Bool(false)}}},
		{Name: "c_int2", Type: "int2", Cells: []Cell{{SQL: "-32768", Want: schema.Int(-32768)}, {SQL: "32767", Want: schema.Int(32767)}, {SQL: "0", Want: schema.Int(0)}}},
		{Name: "c_int4", Type: "int4", Cells: []Cell{{SQL: "-2147483648", Want: schema.Int(-2147483648)}, {SQL: "2147483647", Want: schema.Int(2147483647)}}},
		{Name: "c_int8", Type: "int8", Cells: []Cell{{SQL: "-9223372036854775808", Want: schema.Int(-9223372036854775808)}, {SQL: "9223372036854775807", Want: schema.Int(9223372036854775807)}}},
		{Name: "c_oid", Type: "oid", Cells: []Cell{{SQL: "4294967295", Want: schema.Int(4294967295)}, {SQL: "0", Want: schema.Int(0)}}},
		{Name: "c_float4", Type: "float4", Note: "single precision: carried as the shortest decimal that round-trips it",
			Cells: []Cell{{SQL: "'3.4028235e38'", Want: f32(3.4028235e38)}, {SQL: "'1.4e-45'", Want: f32(1.4e-45), Note: "the smallest subnormal"},
				{SQL: "'1.2345678'", Want: f32(1.2345678), Note: "7 digits"}, {SQL: "'-0'", Want: schema.Float(negZero)}, {SQL: "'NaN'", Want: schema.Float(nan)},
				{SQL: "'Infinity'", Want: schema.Float(inf)}, {SQL: "'-Infinity'", Want: schema.Float(-inf)}}},
		{Name: "c_float8", Type: "float8", Cells: []Cell{{SQL: "'1.7976931348623157e308'", Want: schema.Float(1.7976931348623157e308)},
			{SQL: "'5e-324'", Want: schema.Float(5e-324), Note: "the smallest subnormal"}, {SQL: "'0.1'", Want: schema.Float(0.1)},
			{SQL: "'1.2345678901234567'", Want: schema.Float(1.2345678901234567), Note: "17 digits"}, {SQL: "'-0'", Want: schema.Float(negZero)},
			{SQL: "'NaN'", Want: schema.Float(nan)}, {SQL: "'-Infinity'", Want: schema.Float(-inf)}}},
		{Name: "c_numeric", Type: "numeric", Note: "unconstrained",
			Cells: []Cell{{SQL: thousandDigits, Want: schema.MustDecimal(thousandDigits), Note: "1,000 digits"},
				{SQL: "'NaN'", Want: schema.MustDecimal("NaN")}, {SQL: "'Infinity'", Want: schema.MustDecimal("Infinity")},
				{SQL: "'-Infinity'", Want: schema.MustDecimal("-Infinity")}, {SQL: "-0.000001", Want: schema.MustDecimal("-0.000001")},
				{SQL: "0", Want: schema.MustDecimal("0")}}},
		{Name: "c_numeric_38_10", Type: "numeric(38,10)", Cells: []Cell{
			{SQL: "1234567890123456789012345678.0123456789", Want: schema.MustDecimal("1234567890123456789012345678.0123456789")},
			{SQL: "-0.0000000001", Want: schema.MustDecimal("-0.0000000001")}, {SQL: "0", Want: schema.MustDecimal("0.0000000000")}}},
		{Name: "c_numeric_5_2", Type: "numeric(5,2)", Cells: []Cell{{SQL: "999.99", Want: schema.MustDecimal("999.99")},
			{SQL: "-999.99", Want: schema.MustDecimal("-999.99")}, {SQL: "1.5", Want: schema.MustDecimal("1.50")}}},
		{Name: "c_money", Type: "money", Cells: []Cell{unk("money", "'1234.56'", "$1,234.56"), unk("money", "'-92233720368547758.08'", "-$92,233,720,368,547,758.08")}},
		{Name: "c_text", Type: "text", Cells: []Cell{str(tricky), str(""), str("   "),
			{SQL: "repeat('0123456789abcdef', " + itoa(bigLen/16) + ")", Want: schema.String(bigText), Note: bigNote() + " (TOAST)"}}},
		{Name: "c_varchar", Type: "varchar(10)", Cells: []Cell{str("abcdefghij"), str("äöü€😀😀😀😀😀😀"), str("trailing  ")}},
		{Name: "c_char", Type: "char(5)", Note: "blank-padded", Cells: []Cell{{SQL: "'ab'", Want: schema.String("ab   ")}, {SQL: "''", Want: schema.String("     ")}, {SQL: "'😀'", Want: schema.String("😀    ")}}},
		{Name: "c_qchar", Type: `"char"`, Cells: []Cell{str("a")}},
		{Name: "c_name", Type: "name", Cells: []Cell{str("pg_catalog")}},
		{Name: "c_uuid", Type: "uuid", Cells: []Cell{str("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), str("00000000-0000-0000-0000-000000000000")}},
		{Name: "c_bytea", Type: "bytea", Cells: []Cell{bytea([]byte{0, 1, 2, 3}), bytea([]byte{0, 1, 0xff, 0xfe, 0}), bytea([]byte{}),
			{SQL: "decode('" + hex.EncodeToString(bigBytes) + "', 'hex')", Want: schema.Bytes(bigBytes), Note: bigNote() + ", zero bytes at both ends"}}},
		{Name: "c_date", Type: "date", Cells: []Cell{{SQL: "'2024-02-29'", Want: schema.Date(2024, 2, 29)}, {SQL: "'0001-01-01'", Want: schema.Date(1, 1, 1)},
			{SQL: "'9999-12-31'", Want: schema.Date(9999, 12, 31)}, {SQL: "'1900-01-01'", Want: schema.Date(1900, 1, 1)},
			unk("date", "'4713-01-01 BC'", "4713-01-01 BC"), unk("date", "'5874897-12-31'", "5874897-12-31"),
			unk("date", "'infinity'", "infinity"), unk("date", "'-infinity'", "-infinity")}},
		{Name: "c_timestamp", Type: "timestamp", Cells: []Cell{{SQL: "'2024-02-29 12:34:56.123456'", Want: schema.DateTime(dt("2024-02-29T12:34:56.123456"))},
			{SQL: "'0001-01-01 00:00:00'", Want: schema.DateTime(dt("0001-01-01T00:00:00"))},
			{SQL: "'9999-12-31 23:59:59.999999'", Want: schema.DateTime(dt("9999-12-31T23:59:59.999999"))},
			{SQL: "'1970-01-01 00:00:00.000001'", Want: schema.DateTime(dt("1970-01-01T00:00:00.000001"))},
			unk("timestamp", "'0044-03-15 12:00:00 BC'", "0044-03-15 12:00:00 BC"), unk("timestamp", "'294276-12-31 23:59:59.999999'", "294276-12-31 23:59:59.999999"),
			unk("timestamp", "'infinity'", "infinity")}},
		{Name: "c_timestamptz", Type: "timestamptz", Cells: []Cell{{SQL: "'2024-02-29 12:34:56.123456+05:30'", Want: schema.Timestamp(ts("2024-02-29T07:04:56.123456Z")), Note: "a zone"},
			{SQL: "'0001-01-01 00:00:00+00'", Want: schema.Timestamp(ts("0001-01-01T00:00:00Z"))},
			{SQL: "'9999-12-31 23:59:59.999999+00'", Want: schema.Timestamp(ts("9999-12-31T23:59:59.999999Z"))},
			{SQL: "'2299-12-31 23:59:59.999999+00'", Want: schema.Timestamp(ts("2299-12-31T23:59:59.999999Z"))},
			unk("timestamptz", "'-infinity'", "-infinity"), unk("timestamptz", "'0044-03-15 12:00:00+00 BC'", "0044-03-15 12:00:00+00 BC")}},
		{Name: "c_time", Type: "time", Cells: []Cell{{SQL: "'00:00:00'", Want: schema.TimeOfDay(0)}, {SQL: "'23:59:59.999999'", Want: schema.TimeOfDay(86399999999)},
			{SQL: "'24:00:00'", Want: schema.TimeOfDay(86400000000), Note: "the end of the day"}}},
		{Name: "c_timetz", Type: "timetz", Cells: []Cell{unk("timetz", "'12:34:56.789+05:30'", "12:34:56.789+05:30")}},
		{Name: "c_interval", Type: "interval", Cells: []Cell{unk("interval", "'1 year 2 mons 3 days 04:05:06.789'", "1 year 2 mons 3 days 04:05:06.789"),
			unk("interval", "'-00:00:01'", "-00:00:01"), unk("interval", "'178000000 years'", "178000000 years")}},
		{Name: "c_json", Type: "json", Note: "text kept exactly", Cells: []Cell{
			{SQL: `'{"a": 1, "a": 2}'`, Want: schema.JSON(`{"a": 1, "a": 2}`), Note: "duplicate keys"},
			{SQL: `'{"huge": 1e400, "wide": 18446744073709551617, "long": 1.0000000000000000000001}'`, Want: schema.JSON(`{"huge": 1e400, "wide": 18446744073709551617, "long": 1.0000000000000000000001}`), Note: "numbers a double cannot hold"},
			{SQL: `'null'`, Want: schema.JSON(`null`), Note: "JSON null"}, {SQL: `'"\u0000 and \ud83d\ude00"'`, Want: schema.JSON(`"\u0000 and \ud83d\ude00"`), Note: "escapes"}}},
		{Name: "c_jsonb", Type: "jsonb", Cells: []Cell{
			{SQL: `'{"b": [1, 2.5, null], "a": "x\ty"}'`, Want: schema.JSON(`{"a": "x\ty", "b": [1, 2.5, null]}`)},
			{SQL: `'{"huge": 1e400}'`, Want: schema.JSON(`{"huge": 1` + strings.Repeat("0", 400) + `}`), Note: "a number a double cannot hold"},
			{SQL: `'[]'`, Want: schema.JSON(`[]`)}}},
		{Name: "c_xml", Type: "xml", Cells: []Cell{unk("xml", `'<a b="1">x &amp; y</a>'`, `<a b="1">x &amp; y</a>`)}},
		{Name: "c_int4_array", Type: "int4[]", Cells: []Cell{{SQL: "'{1,NULL,-3}'", Want: schema.Array(schema.Int(1), schema.Null(), schema.Int(-3)), Note: "a NULL element"},
			{SQL: "'{}'", Want: schema.Array()}}},
		{Name: "c_int4_array_2d", Type: "int4[][]", Cells: []Cell{{SQL: "'{{1,2},{3,NULL}}'", Want: schema.Array(schema.Array(schema.Int(1), schema.Int(2)), schema.Array(schema.Int(3), schema.Null())), Note: "two dimensions"}}},
		{Name: "c_int4_array_bounds", Type: "int4[]", Cells: []Cell{unk("_int4", "'[0:2]={1,2,3}'", "[0:2]={1,2,3}")}, Note: "lower bound 0: kept as text"},
		{Name: "c_text_array", Type: "text[]", Cells: []Cell{{SQL: `'{"a \"q\"","NULL",NULL,"","back\\slash","{x,y}"}'`,
			Want: schema.Array(schema.String(`a "q"`), schema.String("NULL"), schema.Null(), schema.String(""), schema.String(`back\slash`), schema.String("{x,y}"))}}},
		{Name: "c_float8_array", Type: "float8[]", Cells: []Cell{{SQL: "'{1.5,NaN,-Infinity,5e-324}'", Want: schema.Array(schema.Float(1.5), schema.Float(nan), schema.Float(-inf), schema.Float(5e-324))}}},
		{Name: "c_numeric_array", Type: "numeric[]", Cells: []Cell{{SQL: "'{1.50,NaN,-0.001}'", Want: schema.Array(schema.MustDecimal("1.50"), schema.MustDecimal("NaN"), schema.MustDecimal("-0.001"))}}},
		{Name: "c_bool_array", Type: "bool[]", Cells: []Cell{{SQL: "'{t,f,NULL}'", Want: schema.Array(schema.Bool(true), schema.Bool(false), schema.Null())}}},
		{Name: "c_timestamptz_array", Type: "timestamptz[]", Cells: []Cell{{SQL: `'{"2024-01-01 00:00:00.5+00"}'`, Want: schema.Array(schema.Timestamp(ts("2024-01-01T00:00:00.5Z")))}}},
		{Name: "c_date_array", Type: "date[]", Cells: []Cell{{SQL: "'{2024-02-29,NULL}'", Want: schema.Array(schema.Date(2024, 2, 29), schema.Null())}}},
		{Name: "c_uuid_array", Type: "uuid[]", Cells: []Cell{{SQL: "'{6ba7b810-9dad-11d1-80b4-00c04fd430c8}'", Want: schema.Array(schema.String("6ba7b810-9dad-11d1-80b4-00c04fd430c8"))}}},
		{Name: "c_bytea_array", Type: "bytea[]", Cells: []Cell{{SQL: `'{"\\x00ff"}'`, Want: schema.Array(schema.Bytes([]byte{0, 0xff}))}}},
		{Name: "c_jsonb_array", Type: "jsonb[]", Cells: []Cell{{SQL: `ARRAY['{"a": 1}'::jsonb, 'null'::jsonb]`, Want: schema.Array(schema.JSON(`{"a": 1}`), schema.JSON(`null`))}}},
		{Name: "c_int4range", Type: "int4range", Cells: []Cell{unk("int4range", "'[1,5)'", "[1,5)"), unk("int4range", "'empty'", "empty"), unk("int4range", "'(,)'", "(,)")}},
		{Name: "c_numrange", Type: "numrange", Cells: []Cell{unk("numrange", "'(1.5,2.5]'", "(1.5,2.5]")}},
		{Name: "c_daterange", Type: "daterange", Cells: []Cell{unk("daterange", "'[2024-01-01,2024-02-01)'", "[2024-01-01,2024-02-01)")}},
		{Name: "c_tstzrange", Type: "tstzrange", Cells: []Cell{unk("tstzrange", "'[2024-01-01 00:00:00+00,infinity)'", `["2024-01-01 00:00:00+00",infinity)`)}},
		{Name: "c_int4multirange", Type: "int4multirange", Cells: []Cell{unk("int4multirange", "'{[1,3),[5,7)}'", "{[1,3),[5,7)}")}},
		{Name: "c_enum", Type: "mood", Cells: []Cell{str("happy"), str("très 😀")}},
		{Name: "c_domain", Type: "posint", Note: "a domain over int4", Cells: []Cell{{SQL: "2147483647", Want: schema.Int(2147483647)}}},
		{Name: "c_composite", Type: "pair", Cells: []Cell{unk("pair", `ROW(1, 'a,"b"')`, `(1,"a,""b""")`)}},
		{Name: "c_bit", Type: "bit(8)", Cells: []Cell{unk("bit", "B'10101010'", "10101010"), unk("bit", "B'00000000'", "00000000")}},
		{Name: "c_varbit", Type: "varbit", Cells: []Cell{unk("varbit", "B'101'", "101"), unk("varbit", "B''", "")}},
		{Name: "c_inet", Type: "inet", Cells: []Cell{unk("inet", "'192.168.0.1/24'", "192.168.0.1/24"), unk("inet", "'::1'", "::1")}},
		{Name: "c_cidr", Type: "cidr", Cells: []Cell{unk("cidr", "'10.0.0.0/8'", "10.0.0.0/8")}},
		{Name: "c_macaddr", Type: "macaddr", Cells: []Cell{unk("macaddr", "'08:00:2b:01:02:03'", "08:00:2b:01:02:03")}},
		{Name: "c_macaddr8", Type: "macaddr8", Cells: []Cell{unk("macaddr8", "'08:00:2b:01:02:03:04:05'", "08:00:2b:01:02:03:04:05")}},
		{Name: "c_point", Type: "point", Cells: []Cell{unk("point", "'(1.5,-2)'", "(1.5,-2)")}},
		{Name: "c_line", Type: "line", Cells: []Cell{unk("line", "'{1,2,3}'", "{1,2,3}")}},
		{Name: "c_lseg", Type: "lseg", Cells: []Cell{unk("lseg", "'[(0,0),(1,1)]'", "[(0,0),(1,1)]")}},
		{Name: "c_box", Type: "box", Cells: []Cell{unk("box", "'(1,1),(0,0)'", "(1,1),(0,0)")}},
		{Name: "c_path", Type: "path", Cells: []Cell{unk("path", "'[(0,0),(1,1),(2,0)]'", "[(0,0),(1,1),(2,0)]")}},
		{Name: "c_polygon", Type: "polygon", Cells: []Cell{unk("polygon", "'((0,0),(1,1),(1,0))'", "((0,0),(1,1),(1,0))")}},
		{Name: "c_circle", Type: "circle", Cells: []Cell{unk("circle", "'<(0,0),1.5>'", "<(0,0),1.5>")}},
		{Name: "c_tsvector", Type: "tsvector", Cells: []Cell{unk("tsvector", "'a fat cat'", "'a' 'cat' 'fat'")}},
		{Name: "c_tsquery", Type: "tsquery", Cells: []Cell{unk("tsquery", "'fat & cat'", "'fat' & 'cat'")}},
		{Name: "c_pg_lsn", Type: "pg_lsn", Cells: []Cell{unk("pg_lsn", "'16/B374D848'", "16/B374D848")}},
	},
}

func bytea(b []byte) Cell {
	return Cell{SQL: `'\x` + hex.EncodeToString(b) + `'::bytea`, Want: schema.Bytes(b)}
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
