package verify

import (
	"fmt"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Postgres is the dialect of Postgres, as a source and as a destination (the
// postgres sink's types: docs/type-mappings.md). Sessions run with DateStyle
// ISO.
var Postgres = Dialect{
	Quote: func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` },
	Param: func(i int, c schema.Column) string {
		switch {
		case c.Type.Kind == schema.KindInt:
			return fmt.Sprintf("CAST(CAST($%d AS text) AS bigint)", i)
		case c.Type.Kind == schema.KindUint:
			return fmt.Sprintf("CAST(CAST($%d AS text) AS numeric)", i)
		case c.Type.Kind == schema.KindDate:
			return fmt.Sprintf("CAST(CAST($%d AS text) AS date)", i)
		case strings.EqualFold(c.Type.Name, "uuid"):
			return fmt.Sprintf("CAST(CAST($%d AS text) AS uuid)", i)
		}
		return fmt.Sprintf(`CAST($%d AS text) COLLATE "C"`, i)
	},
	Order: func(c schema.Column, x string) string {
		if c.Type.Kind == schema.KindString && !strings.EqualFold(c.Type.Name, "uuid") {
			return fmt.Sprintf(`CAST(%s AS text) COLLATE "C"`, x)
		}
		return x
	},
	Text: func(c schema.Column, x string) string {
		switch c.Type.Kind {
		case schema.KindBool:
			return fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s THEN '1' ELSE '0' END", x)
		case schema.KindBytes:
			return fmt.Sprintf("encode(%s, 'hex')", x)
		case schema.KindTimestamp, schema.KindDateTime:
			return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN CAST(CAST(extract(epoch FROM %[1]s) * 1000000 AS numeric(30,0)) AS text) ELSE CAST(%[1]s AS text) END", x)
		case schema.KindDate:
			return fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN to_char(%[1]s, 'YYYY-MM-DD') ELSE CAST(%[1]s AS text) END", x)
		case schema.KindDecimal:
			return fmt.Sprintf("CAST(trim_scale(%s) AS text)", x)
		}
		return fmt.Sprintf("CAST(%s AS text)", x)
	},
	Concat:  func(parts ...string) string { return "(" + strings.Join(parts, " || ") + ")" },
	MD5:     func(x string) string { return "md5(" + x + ")" },
	HexInt:  func(x string) string { return fmt.Sprintf("CAST(CAST('x' || %s AS bit(32)) AS bigint)", x) },
	Substr:  func(x string, from, n int) string { return fmt.Sprintf("substr(%s, %d, %d)", x, from, n) },
	SumText: func(x string) string { return fmt.Sprintf("CAST(COALESCE(SUM(%s), 0) AS text)", x) },
}

// MySQL is the dialect of MySQL and MariaDB as a source. Sessions run with
// time_zone '+00:00'.
var MySQL = Dialect{
	Quote: func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" },
	Param: func(_ int, c schema.Column) string {
		switch c.Type.Kind {
		case schema.KindInt:
			return "CAST(? AS SIGNED)"
		case schema.KindUint:
			return "CAST(? AS UNSIGNED)"
		case schema.KindDate:
			return "CAST(? AS DATE)"
		}
		return "CONVERT(? USING utf8mb4) COLLATE utf8mb4_bin"
	},
	Order: func(c schema.Column, x string) string {
		if c.Type.Kind == schema.KindString {
			return fmt.Sprintf("CONVERT(%s USING utf8mb4) COLLATE utf8mb4_bin", x)
		}
		return x
	},
	Text: func(c schema.Column, x string) string {
		switch c.Type.Kind {
		case schema.KindBool:
			return fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s <> 0 THEN '1' ELSE '0' END", x)
		case schema.KindBytes:
			return fmt.Sprintf("LOWER(HEX(%s))", x)
		case schema.KindTimestamp, schema.KindDateTime:
			return fmt.Sprintf("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', %s) AS CHAR)", x)
		case schema.KindDate:
			return fmt.Sprintf("DATE_FORMAT(%s, '%%Y-%%m-%%d')", x)
		case schema.KindDecimal:
			s := fmt.Sprintf("CAST(%s AS CHAR)", x)
			return fmt.Sprintf("CASE WHEN INSTR(%[1]s, '.') > 0 THEN TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM %[1]s)) ELSE %[1]s END", s)
		case schema.KindString:
			return fmt.Sprintf("CONVERT(%s USING utf8mb4)", x)
		}
		return fmt.Sprintf("CAST(%s AS CHAR)", x)
	},
	Concat:  func(parts ...string) string { return "CONCAT(" + strings.Join(parts, ", ") + ")" },
	MD5:     func(x string) string { return "MD5(" + x + ")" },
	HexInt:  func(x string) string { return fmt.Sprintf("CAST(CONV(%s, 16, 10) AS UNSIGNED)", x) },
	Substr:  func(x string, from, n int) string { return fmt.Sprintf("SUBSTRING(%s, %d, %d)", x, from, n) },
	SumText: func(x string) string { return fmt.Sprintf("CAST(COALESCE(SUM(%s), 0) AS CHAR)", x) },
}

// ClickHouse is the dialect of the ClickHouse sink's tables (19.x and later:
// query parameters). Its expressions do not depend on which of the sink's
// types a column got (Decimal or String, DateTime64, UUID or String, Bool or
// UInt8). Parameters are named p1, p2, … ({p1:String}).
var ClickHouse = Dialect{
	Quote: func(s string) string { return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`" },
	Param: func(i int, c schema.Column) string {
		p := fmt.Sprintf("{p%d:String}", i)
		switch c.Type.Kind {
		case schema.KindInt:
			return "toInt64(" + p + ")"
		case schema.KindUint:
			return "toUInt64(" + p + ")"
		case schema.KindDate:
			return "toDate32(" + p + ")"
		}
		return p
	},
	Order: func(c schema.Column, x string) string {
		switch c.Type.Kind {
		case schema.KindString:
			return "toString(" + x + ")" // a UUID column too: its text orders like its bytes
		case schema.KindDate:
			return "toDate32(" + x + ")"
		}
		return x
	},
	Text: func(c schema.Column, x string) string {
		switch c.Type.Kind {
		case schema.KindBool:
			return fmt.Sprintf("if(isNull(%[1]s), NULL, if(toUInt8(%[1]s) != 0, '1', '0'))", x)
		case schema.KindBytes:
			return fmt.Sprintf("lower(hex(%s))", x)
		case schema.KindTimestamp, schema.KindDateTime:
			return fmt.Sprintf("toString(toUnixTimestamp64Micro(toDateTime64(%s, 6, 'UTC')))", x)
		case schema.KindDecimal:
			s := "toString(" + x + ")"
			return fmt.Sprintf("if(position(%[1]s, '.') > 0, replaceRegexpOne(%[1]s, '\\\\.?0+$', ''), %[1]s)", s)
		case schema.KindDate:
			return "toString(toDate32(" + x + "))"
		}
		return "toString(" + x + ")"
	},
	Concat:  func(parts ...string) string { return "concat(" + strings.Join(parts, ", ") + ")" },
	MD5:     func(x string) string { return "lower(hex(MD5(" + x + ")))" },
	HexInt:  func(x string) string { return "toUInt64(reinterpretAsUInt32(reverse(unhex(" + x + "))))" },
	Substr:  func(x string, from, n int) string { return fmt.Sprintf("substring(%s, %d, %d)", x, from, n) },
	SumText: func(x string) string { return "toString(sum(toUInt64(" + x + ")))" },
}

// Snowflake is the dialect of the Snowflake sink's tables. Strings compare
// byte-wise (no collation). Hex digits become a number by their positions
// (standard SQL), not TO_NUMBER(x, 'XXXXXXXX').
var Snowflake = Dialect{
	Quote: func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` },
	Param: func(_ int, c schema.Column) string {
		switch c.Type.Kind {
		case schema.KindInt, schema.KindUint:
			return "CAST(? AS NUMBER(38,0))"
		case schema.KindDate:
			return "CAST(? AS DATE)"
		}
		return "CAST(? AS VARCHAR)"
	},
	Order: func(_ schema.Column, x string) string { return x },
	Text: func(c schema.Column, x string) string {
		switch c.Type.Kind {
		case schema.KindBool:
			return fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s THEN '1' ELSE '0' END", x)
		case schema.KindDate:
			return fmt.Sprintf("TO_VARCHAR(%s, 'YYYY-MM-DD')", x)
		case schema.KindBytes:
			return fmt.Sprintf("HEX_ENCODE(%s, 0)", x)
		case schema.KindTimestamp, schema.KindDateTime:
			return fmt.Sprintf("TO_VARCHAR(DATE_PART(EPOCH_MICROSECOND, %s))", x)
		case schema.KindDecimal:
			s := "TO_VARCHAR(" + x + ")"
			return fmt.Sprintf("IFF(POSITION('.', %[1]s) > 0, REGEXP_REPLACE(%[1]s, '\\\\.?0+$', ''), %[1]s)", s)
		}
		return "TO_VARCHAR(" + x + ")"
	},
	Concat:  func(parts ...string) string { return "CONCAT(" + strings.Join(parts, ", ") + ")" },
	MD5:     func(x string) string { return "MD5(" + x + ")" },
	HexInt:  hexByPosition,
	Substr:  func(x string, from, n int) string { return fmt.Sprintf("SUBSTR(%s, %d, %d)", x, from, n) },
	SumText: func(x string) string { return fmt.Sprintf("TO_VARCHAR(CAST(COALESCE(SUM(%s), 0) AS NUMBER(38,0)))", x) },
}

// hexByPosition renders the number of 8 lower-case hex digits with standard
// SQL: each digit's position in '0123456789abcdef', weighted.
func hexByPosition(x string) string {
	terms := make([]string, 8)
	for i := range terms {
		terms[i] = fmt.Sprintf("(POSITION(SUBSTR(%s, %d, 1), '0123456789abcdef') - 1) * %d", x, i+1, 1<<(4*(7-i)))
	}
	return "(" + strings.Join(terms, " + ") + ")"
}

// BigQuery is the dialect of the BigQuery sink's tables (GoogleSQL). Values
// travel as named parameters (@p1, …); strings compare by code point, which
// is UTF-8 byte order. Decimals are NUMERIC, BIGNUMERIC or STRING.
var BigQuery = Dialect{
	Quote: func(s string) string { return "`" + strings.ReplaceAll(s, "`", "\\`") + "`" },
	Param: func(i int, c schema.Column) string {
		p := fmt.Sprintf("@p%d", i)
		switch c.Type.Kind {
		case schema.KindInt, schema.KindUint:
			return "CAST(" + p + " AS INT64)"
		case schema.KindDate:
			return "CAST(" + p + " AS DATE)"
		}
		return p
	},
	Order: func(_ schema.Column, x string) string { return x },
	Text: func(c schema.Column, x string) string {
		switch c.Type.Kind {
		case schema.KindBool:
			return fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s THEN '1' ELSE '0' END", x)
		case schema.KindDate:
			return fmt.Sprintf("FORMAT_DATE('%%Y-%%m-%%d', %s)", x)
		case schema.KindBytes:
			return fmt.Sprintf("TO_HEX(%s)", x)
		case schema.KindTimestamp:
			return fmt.Sprintf("CAST(UNIX_MICROS(%s) AS STRING)", x)
		case schema.KindDateTime:
			return fmt.Sprintf("CAST(UNIX_MICROS(TIMESTAMP(%s, 'UTC')) AS STRING)", x)
		case schema.KindDecimal:
			s := "CAST(" + x + " AS STRING)"
			return fmt.Sprintf("IF(STRPOS(%[1]s, '.') > 0, REGEXP_REPLACE(%[1]s, r'\\.?0+$', ''), %[1]s)", s)
		}
		return "CAST(" + x + " AS STRING)"
	},
	Concat: func(parts ...string) string { return "CONCAT(" + strings.Join(parts, ", ") + ")" },
	MD5:    func(x string) string { return "TO_HEX(MD5(" + x + "))" },
	HexInt: func(x string) string {
		terms := make([]string, 8)
		for i := range terms {
			terms[i] = fmt.Sprintf("(STRPOS('0123456789abcdef', SUBSTR(%s, %d, 1)) - 1) * %d", x, i+1, 1<<(4*(7-i)))
		}
		return "(" + strings.Join(terms, " + ") + ")"
	},
	Substr:  func(x string, from, n int) string { return fmt.Sprintf("SUBSTR(%s, %d, %d)", x, from, n) },
	SumText: func(x string) string { return fmt.Sprintf("CAST(COALESCE(SUM(%s), 0) AS STRING)", x) },
}
