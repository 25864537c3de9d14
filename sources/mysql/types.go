package mysql

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"golang.org/x/text/encoding/charmap"
)

// colInfo is what decoding one column needs, built identically from a TABLE_MAP
// event (stream) and from information_schema (snapshot), so both paths yield the
// same schema and the same values.
type colInfo struct {
	table    string // namespace.name, for what a value of it reports
	name     string
	typ      schema.Type
	nullable bool
	binary   bool     // a binary string (BINARY, VARBINARY, BLOB): bytes, not text
	labels   []string // ENUM and SET labels
	dataType string   // base type name: int, varchar, datetime, enum…
	latin1   bool     // text stored as latin1 (cp1252) in the binlog: transcoded to UTF-8
}

// columnType maps a MySQL base type to the schema. length is the declared
// length of CHAR and VARCHAR (characters) and BINARY and VARBINARY (bytes),
// which sinks keep: a CHAR(120) must not become a one-character column.
func columnType(dataType string, unsigned bool, precision, scale, length int) schema.Type {
	t := schema.Type{Name: dataType}
	switch dataType {
	case "char", "varchar", "binary", "varbinary":
		t.Length = length
	}
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		t.Kind = schema.KindInt
		if unsigned {
			t.Kind, t.Name = schema.KindUint, dataType+" unsigned"
		}
	case "year":
		t.Kind = schema.KindInt
	case "bit":
		t.Kind, t.Precision = schema.KindUint, precision
	case "float", "double":
		t.Kind = schema.KindFloat
	case "decimal":
		t.Kind, t.Precision, t.Scale = schema.KindDecimal, precision, scale
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set":
		t.Kind = schema.KindString
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		t.Kind = schema.KindBytes
	case "date":
		t.Kind = schema.KindDate
	case "datetime":
		t.Kind, t.Precision = schema.KindDateTime, precision
	case "timestamp":
		t.Kind, t.Precision = schema.KindTimestamp, precision
	case "time":
		t.Kind, t.Precision = schema.KindTime, precision
	case "json":
		t.Kind = schema.KindJSON
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		t.Kind, t.Name = schema.KindBytes, "geometry" // WKB with the 4-byte SRID prefix
	default:
		t.Kind = schema.KindUnknown
	}
	return t
}

// fromTableMap builds the columns of a TABLE_MAP event (binlog_row_metadata=FULL).
func fromTableMap(tm *replication.TableMapEvent) ([]colInfo, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("table %s.%s: the binlog has no column names; set binlog_row_metadata=FULL", tm.Schema, tm.Table)
	}
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()
	cols := make([]colInfo, tm.ColumnCount)
	for i := range cols {
		c := &cols[i]
		c.name, c.table = names[i], string(tm.Schema)+"."+string(tm.Table)
		if id, ok := collations[i]; ok && id != binaryCollation {
			if coll, err := charset.GetCollationByID(int(id)); err == nil {
				switch coll.CharsetName {
				case "utf8", "utf8mb3", "utf8mb4", "ascii", "binary":
				case "latin1":
					c.latin1 = true
				default:
					return nil, fmt.Errorf("table %s.%s column %s uses the %s character set; cdcd reads utf8mb4, utf8, ascii, latin1 and binary columns: convert it (ALTER TABLE … CONVERT TO CHARACTER SET utf8mb4)",
						tm.Schema, tm.Table, c.name, coll.CharsetName)
				}
			}
		}
		_, c.nullable = tm.Nullable(i)
		tp, meta := tm.ColumnType[i], tm.ColumnMeta[i]
		if tp == gmysql.MYSQL_TYPE_STRING && meta >= 256 { // real type in the metadata (ENUM, SET, CHAR)
			if b0 := byte(meta >> 8); b0&0x30 == 0x30 {
				tp = b0
			} else {
				tp = b0 | 0x30
			}
		}
		var precision, scale, length int
		switch tp {
		case gmysql.MYSQL_TYPE_TINY:
			c.dataType = "tinyint"
		case gmysql.MYSQL_TYPE_SHORT:
			c.dataType = "smallint"
		case gmysql.MYSQL_TYPE_INT24:
			c.dataType = "mediumint"
		case gmysql.MYSQL_TYPE_LONG:
			c.dataType = "int"
		case gmysql.MYSQL_TYPE_LONGLONG:
			c.dataType = "bigint"
		case gmysql.MYSQL_TYPE_YEAR:
			c.dataType = "year"
		case gmysql.MYSQL_TYPE_BIT:
			c.dataType, precision = "bit", int(meta>>8)*8+int(meta&0xff)
		case gmysql.MYSQL_TYPE_FLOAT:
			c.dataType = "float"
		case gmysql.MYSQL_TYPE_DOUBLE:
			c.dataType = "double"
		case gmysql.MYSQL_TYPE_NEWDECIMAL:
			c.dataType, precision, scale = "decimal", int(meta>>8), int(meta&0xff)
		case gmysql.MYSQL_TYPE_DATE:
			c.dataType = "date"
		case gmysql.MYSQL_TYPE_DATETIME, gmysql.MYSQL_TYPE_DATETIME2:
			c.dataType, precision = "datetime", int(meta)
		case gmysql.MYSQL_TYPE_TIMESTAMP, gmysql.MYSQL_TYPE_TIMESTAMP2:
			c.dataType, precision = "timestamp", int(meta)
		case gmysql.MYSQL_TYPE_TIME, gmysql.MYSQL_TYPE_TIME2:
			c.dataType, precision = "time", int(meta)
		case gmysql.MYSQL_TYPE_JSON:
			c.dataType = "json"
		case gmysql.MYSQL_TYPE_ENUM:
			c.dataType, c.labels = "enum", enums[i]
		case gmysql.MYSQL_TYPE_SET:
			c.dataType, c.labels = "set", sets[i]
		case gmysql.MYSQL_TYPE_GEOMETRY:
			c.dataType = "geometry"
		case gmysql.MYSQL_TYPE_VARCHAR, gmysql.MYSQL_TYPE_VAR_STRING:
			c.binary = collations[i] == binaryCollation
			c.dataType = map[bool]string{false: "varchar", true: "varbinary"}[c.binary]
			length = characters(int(meta), collations[i])
		case gmysql.MYSQL_TYPE_STRING:
			c.binary = collations[i] == binaryCollation
			c.dataType = map[bool]string{false: "char", true: "binary"}[c.binary]
			length = characters(stringBytes(tm.ColumnMeta[i]), collations[i])
		case gmysql.MYSQL_TYPE_BLOB:
			c.binary = collations[i] == binaryCollation
			c.dataType = blobName(int(meta), c.binary)
		default:
			c.dataType = fmt.Sprintf("type%d", tp)
		}
		c.typ = columnType(c.dataType, unsigned[i], precision, scale, length)
	}
	return cols, nil
}

// stringBytes returns the byte length of a CHAR or BINARY column from its
// TABLE_MAP metadata: the real type in the high byte, the length in the low
// one, and lengths over 255 with two more bits hidden in the real type's
// (MySQL's Field_string::do_save_field_metadata).
func stringBytes(meta uint16) int {
	if meta < 256 {
		return int(meta)
	}
	b0, b1 := uint16(meta>>8), meta&0xff
	if b0&0x30 != 0x30 {
		return int(b1 | ((b0&0x30)^0x30)<<4)
	}
	return int(b1)
}

// characters turns a string column's length in bytes (what a TABLE_MAP
// gives) into characters (what it was declared with), by the most bytes a
// character of its collation's charset takes.
func characters(bytes int, collation uint64) int {
	if collation == binaryCollation {
		return bytes
	}
	if coll, err := charset.GetCollationByID(int(collation)); err == nil {
		if cs, err := charset.GetCharsetInfo(coll.CharsetName); err == nil && cs.Maxlen > 1 {
			return bytes / cs.Maxlen
		}
	}
	return bytes
}

// binaryCollation is the collation id of the binary charset.
const binaryCollation = 63

func blobName(lengthBytes int, binary bool) string {
	names := map[int][2]string{1: {"tinytext", "tinyblob"}, 2: {"text", "blob"}, 3: {"mediumtext", "mediumblob"}, 4: {"longtext", "longblob"}}
	n, ok := names[lengthBytes]
	if !ok {
		n = names[4]
	}
	if binary {
		return n[1]
	}
	return n[0]
}

// fromInformationSchema builds a column from information_schema.COLUMNS;
// length is CHARACTER_MAXIMUM_LENGTH.
func fromInformationSchema(name, dataType, fullType string, nullable bool, precision, scale, length int, charset string) colInfo {
	c := colInfo{name: name, nullable: nullable, dataType: strings.ToLower(dataType)}
	switch c.dataType {
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.binary = true
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		c.binary = charset == "binary"
		if c.binary {
			c.dataType = map[string]string{"char": "binary", "varchar": "varbinary", "tinytext": "tinyblob", "text": "blob", "mediumtext": "mediumblob", "longtext": "longblob"}[c.dataType]
		}
	case "enum", "set":
		c.labels = parseLabels(fullType)
	case "numeric":
		c.dataType = "decimal"
	}
	// columnType reads precision only where it means something: decimal (digits),
	// bit (NUMERIC_PRECISION: bits), datetime, timestamp, time (DATETIME_PRECISION)
	c.typ = columnType(c.dataType, strings.Contains(strings.ToLower(fullType), "unsigned"), precision, scale, length)
	return c
}

// parseLabels reads the labels of enum('a','b”c') or set(…).
func parseLabels(columnType string) []string {
	open := strings.IndexByte(columnType, '(')
	if open < 0 {
		return nil
	}
	s := columnType[open+1 : strings.LastIndexByte(columnType, ')')]
	var out []string
	for i := 0; i < len(s); {
		if s[i] != '\'' {
			i++
			continue
		}
		var b strings.Builder
		i++
		for i < len(s) {
			if s[i] == '\'' && i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			if s[i] == '\'' {
				i++
				break
			}
			b.WriteByte(s[i])
			i++
		}
		out = append(out, b.String())
	}
	return out
}

// zeroDateError is returned for a zero date under zero_dates: error.
type zeroDateError struct{ column string }

func (e *zeroDateError) Error() string {
	return fmt.Sprintf("column %s holds a zero date or one with a zero month or day (0000-00-00, 2020-01-00); set zero_dates: null to read them as NULL", e.column)
}
func (e *zeroDateError) Permanent() bool { return true }

// decoder turns column values into schema Values.
type decoder struct {
	zeroAsNull bool
	// nulled is told of each zero date read as NULL (zero_dates: null)
	nulled func(c *colInfo)
}

// binlog converts a value decoded by go-mysql from a row event.
func (d decoder) binlog(c *colInfo, v any) (schema.Value, error) {
	if v == nil {
		return schema.Null(), nil
	}
	switch c.dataType {
	case "enum":
		i, _ := v.(int64)
		if i <= 0 || int(i) > len(c.labels) {
			return schema.String(""), nil // the invalid value '' (index 0)
		}
		return schema.String(c.labels[i-1]), nil
	case "set":
		bits, _ := v.(int64)
		var out []string
		for i, l := range c.labels {
			if bits&(1<<i) != 0 {
				out = append(out, l)
			}
		}
		return schema.String(strings.Join(out, ",")), nil
	case "bit":
		return schema.Uint(uint64(toInt64(v))), nil
	}
	switch x := v.(type) {
	case int8, int16, int32, int64, int:
		if c.typ.Kind == schema.KindUint {
			return schema.Uint(uint64(toInt64(x))), nil
		}
		return schema.Int(toInt64(x)), nil
	case uint8:
		return schema.Uint(uint64(x)), nil
	case uint16:
		return schema.Uint(uint64(x)), nil
	case uint32:
		return schema.Uint(uint64(x)), nil
	case uint64:
		return schema.Uint(x), nil
	case float32:
		// FLOAT is single precision: keep the shortest decimal that round-trips
		// it, as SELECT prints it
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return schema.Float(f), nil
	case float64:
		return schema.Float(x), nil
	case []byte:
		return d.text(c, d.utf8(c, x))
	case string:
		return d.text(c, d.utf8(c, []byte(x)))
	}
	return d.text(c, []byte(fmt.Sprint(v)))
}

// utf8 transcodes a latin1 column's bytes (the binlog holds them as stored; a
// SELECT gets them converted by the server).
func (d decoder) utf8(c *colInfo, b []byte) []byte {
	if !c.latin1 || c.typ.Kind != schema.KindString {
		return b
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return b
	}
	return out
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case int:
		return int64(x)
	case uint64:
		return int64(x)
	}
	return 0
}

// text converts a value in MySQL's text form (a SELECT in the text protocol, or
// go-mysql's string rendering of a binlog value).
func (d decoder) text(c *colInfo, b []byte) (schema.Value, error) {
	s := string(b)
	switch c.typ.Kind {
	case schema.KindInt:
		i, err := strconv.ParseInt(s, 10, 64)
		return schema.Int(i), err
	case schema.KindUint:
		if c.dataType == "bit" {
			var u uint64
			for _, x := range b { // SELECT returns BIT as big-endian bytes
				u = u<<8 | uint64(x)
			}
			return schema.Uint(u), nil
		}
		u, err := strconv.ParseUint(s, 10, 64)
		return schema.Uint(u), err
	case schema.KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		return schema.Float(f), err
	case schema.KindDecimal:
		return schema.Decimal(s)
	case schema.KindString:
		return schema.String(s), nil
	case schema.KindBytes:
		if c.dataType == "binary" && len(b) < c.typ.Length {
			// the binlog strips a BINARY value's trailing zero bytes; the
			// column holds them (a SELECT returns them)
			b = append(b[:len(b):len(b)], make([]byte, c.typ.Length-len(b))...)
		}
		return schema.Bytes(b), nil
	case schema.KindJSON:
		return schema.JSON(s), nil
	case schema.KindDate:
		if zeroDate(s) {
			return d.zero(c)
		}
		t, err := time.Parse("2006-01-02", s)
		return schema.Date(t.Year(), t.Month(), t.Day()), err
	case schema.KindDateTime, schema.KindTimestamp:
		if zeroDate(s) {
			return d.zero(c)
		}
		t, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			return schema.Value{}, err
		}
		if c.typ.Kind == schema.KindTimestamp {
			return schema.Timestamp(t), nil // the session and the binlog decoder both use UTC
		}
		return schema.DateTime(t), nil
	case schema.KindTime:
		return timeValue(s, c.typ.Precision)
	}
	return schema.Unknown(c.dataType, s), nil
}

// zeroDate reports whether a DATE, DATETIME or TIMESTAMP text has a zero
// year, month or day (0000-00-00, 2020-01-00, 2020-00-15): no calendar date.
func zeroDate(s string) bool {
	return len(s) >= 10 && (s[:4] == "0000" || s[5:7] == "00" || s[8:10] == "00")
}

func (d decoder) zero(c *colInfo) (schema.Value, error) {
	if d.zeroAsNull {
		if d.nulled != nil {
			d.nulled(c)
		}
		return schema.Null(), nil
	}
	return schema.Value{}, &zeroDateError{column: c.name}
}

// timeValue reads a TIME (-838:59:59.999999 to 838:59:59.999999): a time of day
// when it is one, else its text in one form (fsp fraction digits), whichever way
// it was read.
func timeValue(s string, fsp int) (schema.Value, error) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	hms, frac, _ := strings.Cut(body, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return schema.Value{}, fmt.Errorf("bad TIME %q", s)
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return schema.Value{}, fmt.Errorf("bad TIME %q", s)
	}
	for len(frac) < 6 {
		frac += "0"
	}
	us, _ := strconv.Atoi(frac[:6])
	total := int64(h)*3600e6 + int64(m)*60e6 + int64(sec)*1e6 + int64(us)
	if neg || total > 24*3600e6 {
		text := fmt.Sprintf("%02d:%02d:%02d", h, m, sec)
		if neg {
			text = "-" + text
		}
		if fsp > 0 {
			text += "." + frac[:min(fsp, 6)]
		}
		return schema.Unknown("time", text), nil
	}
	return schema.TimeOfDay(total), nil
}

// queried converts a value of a SELECT result: []byte in the text protocol,
// typed numbers in the binary one (prepared statements).
func (d decoder) queried(c *colInfo, v any) (schema.Value, error) {
	switch x := v.(type) {
	case nil:
		return schema.Null(), nil
	case []byte:
		return d.text(c, x)
	case string:
		return d.text(c, []byte(x))
	case float64:
		if c.dataType == "float" {
			x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
		}
		return schema.Float(x), nil
	case float32:
		return d.binlog(c, x)
	case int64:
		if c.dataType == "bit" || c.typ.Kind == schema.KindUint {
			return schema.Uint(uint64(x)), nil
		}
		return schema.Int(x), nil
	case uint64:
		if c.typ.Kind == schema.KindInt {
			return schema.Int(int64(x)), nil
		}
		return schema.Uint(x), nil
	}
	return d.text(c, []byte(fmt.Sprint(v)))
}
