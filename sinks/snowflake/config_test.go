package snowflake

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/cdcd-dev/cdcd/schema"

	"github.com/stretchr/testify/require"
)

func TestConfigListsEveryProblem(t *testing.T) {
	err := Config{Password: "hunter2", Protocol: "ftp", MergeParallelism: 99}.WithDefaults().Validate()
	require.Error(t, err)
	for _, want := range []string{"account: required", "user: required", "database: required", "schema: required",
		"password: password auth needs password_auth: true", "protocol: must be https or http", "merge_parallelism: must be between 1 and 32"} {
		require.Contains(t, err.Error(), want)
	}
	require.NotContains(t, err.Error(), "hunter2", "errors never carry secrets")
	require.ErrorContains(t, Config{Account: "a", User: "u", Database: "d", Schema: "s"}.WithDefaults().Validate(), "private_key: required")
}

func TestConfigKeys(t *testing.T) {
	base := Config{Account: "myorg-acct", User: "u", Database: "D", Schema: "S"}
	enc := testKey(t)

	c := base
	c.PrivateKey, c.PrivateKeyPassphrase = enc, testPassphrase
	require.NoError(t, c.WithDefaults().Validate())
	k, err := c.rsaKey()
	require.NoError(t, err)
	require.Equal(t, 2048, k.N.BitLen())

	c.PrivateKeyPassphrase = "wrong passphrase"
	err = c.WithDefaults().Validate()
	require.ErrorContains(t, err, "cannot decrypt the key (wrong private_key_passphrase?)")
	require.NotContains(t, err.Error(), "wrong passphrase", "the passphrase is never echoed")

	c.PrivateKeyPassphrase = ""
	require.ErrorContains(t, c.WithDefaults().Validate(), "private_key_passphrase: required, the key in private_key is encrypted")

	c.PrivateKey = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"
	require.ErrorContains(t, c.WithDefaults().Validate(), "openssl pkcs8 -topk8")

	c.PrivateKey = "not a key"
	require.ErrorContains(t, c.WithDefaults().Validate(), "private_key: not a PEM block")

	f := filepath.Join(t.TempDir(), "key.p8")
	require.NoError(t, os.WriteFile(f, []byte(enc), 0o600))
	c = base
	c.PrivateKeyFile, c.PrivateKeyPassphrase = f, testPassphrase
	require.NoError(t, c.WithDefaults().Validate())
	c.PrivateKey = enc
	require.ErrorContains(t, c.WithDefaults().Validate(), "set one of them")

	c = base
	c.Password, c.PasswordAuth = "pw", true
	require.NoError(t, c.WithDefaults().Validate(), "password auth with the explicit opt-in")
	c.PrivateKey = enc
	require.Error(t, c.WithDefaults().Validate())
}

func TestDestType(t *testing.T) {
	for _, tc := range []struct {
		c    colType
		want string
	}{{destType(typ("numeric", 10, 2)), "NUMBER(10,2)"}, {destType(typ("numeric", 0, 0)), "VARCHAR"}, {destType(typ("numeric", 50, 2)), "VARCHAR"}} {
		require.Equal(t, tc.want, tc.c.sql())
	}
	require.True(t, strings.HasPrefix(destType(typ("numeric", 38, 0)).sql(), "NUMBER(38,0)"))
}

func typ(name string, p, s int) schema.Type {
	return schema.Type{Kind: schema.KindDecimal, Name: name, Precision: p, Scale: s}
}

func TestUnrepresentableValues(t *testing.T) {
	num := colType{base: "NUMBER", prec: 5, scale: 2}
	ts := colType{base: "TIMESTAMP_TZ"}
	for _, tc := range []struct {
		c    colType
		v    schema.Value
		want string
	}{
		{num, schema.MustDecimal("NaN"), "NUMBER(5,2) has no NaN"},
		{num, schema.MustDecimal("1.234"), "more than 2 fractional digits"},
		{num, schema.MustDecimal("1234.5"), "out of range for NUMBER(5,2)"},
		{num, schema.MustDecimal("123.40"), ""},
		{num, schema.Int(999), ""},
		{num, schema.Int(1000), "out of range"},
		{ts, schema.Timestamp(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), "year 10000 is outside"},
		{colType{base: "TEXT"}, schema.String(strings.Repeat("x", maxText+1)), "exceed VARCHAR's 16 MiB"},
		{colType{base: "BINARY"}, schema.Bytes(make([]byte, maxBinary+1)), "exceed BINARY's 8 MiB"},
		// found: Snowflake's documented rules, which fakesnow does not keep
		{colType{base: "TIME"}, schema.TimeOfDay(86400e6), "24:00:00 has no TIME"},
		{colType{base: "TIME"}, schema.TimeOfDay(86400e6 - 1), ""},
		{colType{base: "VARIANT"}, schema.JSON(`{"a": 1, "a": 2}`), "key repeated"},
		{colType{base: "VARIANT"}, schema.JSON(`{"n": 1.0000000000000000000001}`), "more digits than a float64 holds"},
		{colType{base: "VARIANT"}, schema.JSON(`{"n": 12345678901234567890123, "m": [0.5]}`), ""},
	} {
		b := array.NewBuilder(memory.DefaultAllocator, tc.c.arrowType())
		got := appendValue(b, tc.c, tc.v)
		b.Release()
		if tc.want == "" {
			require.Empty(t, got, "%s into %s", tc.v.AppendJSON(nil), tc.c.sql())
		} else {
			require.Contains(t, got, tc.want)
		}
	}
}
