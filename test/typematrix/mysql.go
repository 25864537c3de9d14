package typematrix

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// MySQL is the MySQL/MariaDB source's matrix table (run on MariaDB 10.11, with
// binlog_row_metadata=FULL, in a utf8mb4 database, the session in UTC and
// NO_BACKSLASH_ESCAPES so that literals read as standard SQL).
var MySQL = Source{
	Name: "mysql",
	Columns: []Column{
		{Name: "c_tinyint", Type: "tinyint", Cells: []Cell{ints(-128), ints(127)}},
		{Name: "c_tinyint_unsigned", Type: "tinyint unsigned", Cells: []Cell{uints(0), uints(255)}},
		{Name: "c_smallint", Type: "smallint", Cells: []Cell{ints(-32768), ints(32767)}},
		{Name: "c_smallint_unsigned", Type: "smallint unsigned", Cells: []Cell{uints(65535)}},
		{Name: "c_mediumint", Type: "mediumint", Cells: []Cell{ints(-8388608), ints(8388607)}},
		{Name: "c_mediumint_unsigned", Type: "mediumint unsigned", Cells: []Cell{uints(16777215)}},
		{Name: "c_int", Type: "int", Cells: []Cell{ints(-2147483648), ints(2147483647)}},
		{Name: "c_int_unsigned", Type: "int unsigned", Cells: []Cell{uints(4294967295)}},
		{Name: "c_bigint", Type: "bigint", Cells: []Cell{ints(-9223372036854775808), ints(9223372036854775807)}},
		{Name: "c_bigint_unsigned", Type: "bigint unsigned", Cells: []Cell{uints(18446744073709551615), uints(9223372036854775808)}},
		{Name: "c_year", Type: "year", Cells: []Cell{ints(1901), ints(2155), {SQL: "0", Want: schema.Int(0), Note: "year 0000"}}},
		{Name: "c_bit1", Type: "bit(1)", Cells: []Cell{{SQL: "b'1'", Want: schema.Uint(1)}, {SQL: "b'0'", Want: schema.Uint(0)}}},
		{Name: "c_bit64", Type: "bit(64)", Cells: []Cell{{SQL: "b'" + strings.Repeat("1", 64) + "'", Want: schema.Uint(math.MaxUint64)}, {SQL: "b'101'", Want: schema.Uint(5)}}},
		{Name: "c_float", Type: "float", Note: "single precision: carried as the shortest decimal that round-trips it", Cells: []Cell{
			{SQL: "3.40282e38", Want: f32(3.40282e38)}, {SQL: "-1.17549e-38", Want: f32(-1.17549e-38)},
			{SQL: "16777217", Want: f32(16777216), Note: "rounds to 16777216 in single precision"}, {SQL: "1.2345678", Want: f32(1.2345678), Note: "7 digits"}}},
		{Name: "c_double", Type: "double", Cells: []Cell{{SQL: "1.7976931348623157e308", Want: schema.Float(1.7976931348623157e308)},
			{SQL: "2.2250738585072014e-308", Want: schema.Float(2.2250738585072014e-308)}, {SQL: "0.1", Want: schema.Float(0.1)},
			{SQL: "1.2345678901234567", Want: schema.Float(1.2345678901234567), Note: "17 digits"}}},
		{Name: "c_decimal_65_30", Type: "decimal(65,30)", Cells: []Cell{
			{SQL: "99999999999999999999999999999999999.999999999999999999999999999999", Want: schema.MustDecimal("99999999999999999999999999999999999.999999999999999999999999999999")},
			{SQL: "-0.000000000000000000000000000001", Want: schema.MustDecimal("-0.000000000000000000000000000001")}}},
		{Name: "c_decimal_10_2", Type: "decimal(10,2)", Cells: []Cell{{SQL: "-12345678.90", Want: schema.MustDecimal("-12345678.90")}, {SQL: "0", Want: schema.MustDecimal("0.00")}}},
		{Name: "c_date", Type: "date", Cells: []Cell{{SQL: "'1000-01-01'", Want: schema.Date(1000, 1, 1)}, {SQL: "'9999-12-31'", Want: schema.Date(9999, 12, 31)},
			{SQL: "'2024-02-29'", Want: schema.Date(2024, 2, 29)}}},
		{Name: "c_datetime", Type: "datetime(6)", Cells: []Cell{{SQL: "'1000-01-01 00:00:00.000000'", Want: schema.DateTime(dt("1000-01-01T00:00:00"))},
			{SQL: "'9999-12-31 23:59:59.999999'", Want: schema.DateTime(dt("9999-12-31T23:59:59.999999"))},
			{SQL: "'1969-12-31 23:59:59.000001'", Want: schema.DateTime(dt("1969-12-31T23:59:59.000001"))}}},
		{Name: "c_datetime0", Type: "datetime", Cells: []Cell{{SQL: "'2024-02-29 12:34:56'", Want: schema.DateTime(dt("2024-02-29T12:34:56"))}}},
		{Name: "c_timestamp", Type: "timestamp(6) NULL", Cells: []Cell{{SQL: "'1970-01-01 00:00:01.000000'", Want: schema.Timestamp(ts("1970-01-01T00:00:01Z"))},
			{SQL: "'2038-01-19 03:14:07.999999'", Want: schema.Timestamp(ts("2038-01-19T03:14:07.999999Z"))}}},
		{Name: "c_time", Type: "time(6)", Cells: []Cell{{SQL: "'12:34:56.123456'", Want: schema.TimeOfDay(45296123456)},
			unk("time", "'-838:59:59.000000'", "-838:59:59.000000"), unk("time", "'838:59:59.000000'", "838:59:59.000000"),
			{SQL: "'24:00:00'", Want: schema.TimeOfDay(86400000000)}, unk("time", "'25:00:00.000001'", "25:00:00.000001")}},
		{Name: "c_char", Type: "char(10)", Note: "trailing spaces are not kept by MySQL", Cells: []Cell{{SQL: "'ab  '", Want: schema.String("ab")}, str("äöü😀"), str("")}},
		{Name: "c_varchar", Type: "varchar(255)", Cells: []Cell{str(tricky), str("trailing  "), str(""),
			{SQL: "CONCAT('a', CHAR(0), 'b')", Want: schema.String("a\x00b"), Note: "a NUL character"}}},
		{Name: "c_varchar_latin1", Type: "varchar(20) CHARACTER SET latin1", Cells: []Cell{str("café €")}},
		{Name: "c_tinytext", Type: "tinytext", Cells: []Cell{str("t")}},
		{Name: "c_text", Type: "text", Cells: []Cell{str(tricky)}},
		{Name: "c_mediumtext", Type: "mediumtext", Cells: []Cell{{SQL: "REPEAT('0123456789abcdef', " + itoa(bigLen/16) + ")", Want: schema.String(bigText), Note: bigNote()}}},
		{Name: "c_longtext", Type: "longtext", Cells: []Cell{str("😀")}},
		{Name: "c_binary", Type: "binary(8)", Note: "zero-padded to its length", Cells: []Cell{hexCell([]byte{0, 1, 2, 3, 0, 0xff, 0xfe, 0}),
			{SQL: "x'00'", Want: schema.Bytes(make([]byte, 8))}, {SQL: "x'ff'", Want: schema.Bytes([]byte{0xff, 0, 0, 0, 0, 0, 0, 0})}}},
		{Name: "c_varbinary", Type: "varbinary(16)", Cells: []Cell{hexCell([]byte{0, 0xff, 0}), {SQL: "''", Want: schema.Bytes([]byte{})}}},
		{Name: "c_tinyblob", Type: "tinyblob", Cells: []Cell{hexCell([]byte{0})}},
		{Name: "c_blob", Type: "blob", Cells: []Cell{hexCell([]byte{0, 1, 2})}},
		{Name: "c_mediumblob", Type: "mediumblob", Cells: []Cell{{SQL: "x'" + hex.EncodeToString(bigBytes) + "'", Want: schema.Bytes(bigBytes), Note: bigNote() + ", zero bytes at both ends"}}},
		{Name: "c_longblob", Type: "longblob", Cells: []Cell{hexCell([]byte("\x00\xff"))}},
		{Name: "c_enum", Type: "enum('a','b c','😀')", Cells: []Cell{str("b c"), str("😀")}},
		{Name: "c_set", Type: "set('x','y','z')", Cells: []Cell{{SQL: "'z,x'", Want: schema.String("x,z")}, str("")}},
		{Name: "c_json", Type: "json", Note: "MariaDB's JSON is LONGTEXT: text kept exactly", Cells: []Cell{str(`{"a": 1, "a": 2}`), str(`{"huge": 1e400}`)}},
		{Name: "c_geometry", Type: "geometry", Cells: []Cell{{SQL: "ST_GeomFromText('POINT(1 2)')", Want: schema.Bytes(wkbPoint(0, 1, 2)), Note: "WKB with the SRID prefix"}}},
		{Name: "c_point", Type: "point", Cells: []Cell{{SQL: "ST_GeomFromText('POINT(-1.5 1e300)', 4326)", Want: schema.Bytes(wkbPoint(4326, -1.5, 1e300))}}},
		{Name: "c_linestring", Type: "linestring", Cells: []Cell{{SQL: "ST_GeomFromText('LINESTRING(0 0, 1 1)')", Want: schema.Bytes(wkbLine(0, [][2]float64{{0, 0}, {1, 1}}))}}},
	},
}

func ints(i int64) Cell   { return Cell{SQL: itoa64(i), Want: schema.Int(i)} }
func uints(u uint64) Cell { return Cell{SQL: utoa(u), Want: schema.Uint(u)} }

func hexCell(b []byte) Cell {
	return Cell{SQL: "x'" + hex.EncodeToString(b) + "'", Want: schema.Bytes(b)}
}

func itoa64(i int64) string {
	if i < 0 {
		return "-" + utoa(uint64(-(i+1))+1)
	}
	return utoa(uint64(i))
}

func utoa(u uint64) string {
	var b []byte
	for u > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + u%10)}, b...)
		u /= 10
	}
	return string(b)
}

// wkbPoint is a MySQL geometry value: the SRID (little-endian), then the
// point's WKB (little-endian).
func wkbPoint(srid uint32, x, y float64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, srid)
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(y))
}

func wkbLine(srid uint32, pts [][2]float64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, srid)
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pts)))
	for _, p := range pts {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p[0]))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p[1]))
	}
	return b
}
