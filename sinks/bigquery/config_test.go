package bigquery

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestConfigListsEveryProblem(t *testing.T) {
	err := Config{Project: "Bad_Project", Dataset: "has-dash", MergeParallelism: 99, RequestBytes: 20 << 20, PartitionGranularity: "week",
		CredentialsJSON: `{"type": "authorized_user", "refresh_token": "s3cret-token"}`, Labels: map[string]string{"Team": "x"}}.WithDefaults().Validate()
	require.Error(t, err)
	for _, want := range []string{`project: "Bad_Project" is not a project id`, `dataset: "has-dash" is not a dataset id`,
		"merge_parallelism: must be between 1 and 32", "request_bytes: must be between", "partition_granularity: must be HOUR, DAY, MONTH or YEAR",
		"credentials_json: want a service-account key", "labels.Team: a label key"} {
		require.Contains(t, err.Error(), want)
	}
	require.NotContains(t, err.Error(), "s3cret-token", "errors never carry secrets")
	require.ErrorContains(t, Config{}.WithDefaults().Validate(), "project: required")
	require.ErrorContains(t, Config{Project: "my-project", Dataset: "d", NoAuth: true}.WithDefaults().Validate(), "no_auth: is for emulators and needs endpoint and storage_endpoint")
	require.NoError(t, Config{Project: "my-project", Dataset: "analytics"}.WithDefaults().Validate(), "application default credentials")
	require.NoError(t, Config{Project: "example.com:my-project", Dataset: "analytics"}.WithDefaults().Validate(), "a domain-scoped project")
}

func TestConfigCredentials(t *testing.T) {
	key := `{"type": "service_account", "client_email": "cdcd@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"}`
	c := Config{Project: "my-project", Dataset: "d", CredentialsJSON: key}
	require.NoError(t, c.WithDefaults().Validate())
	f := filepath.Join(t.TempDir(), "key.json")
	require.NoError(t, os.WriteFile(f, []byte(key), 0o600))
	c.CredentialsFile = f
	require.ErrorContains(t, c.WithDefaults().Validate(), "credentials_json, credentials_file: set one of them")
	c.CredentialsJSON = ""
	require.NoError(t, c.WithDefaults().Validate())
	c.CredentialsFile = filepath.Join(t.TempDir(), "missing.json")
	require.ErrorContains(t, c.WithDefaults().Validate(), "credentials_file: open")
	c.CredentialsFile, c.CredentialsJSON = "", "not json: secret"
	err := c.WithDefaults().Validate()
	require.ErrorContains(t, err, "credentials_json: not a JSON service-account key")
	require.NotContains(t, err.Error(), "secret")
}

func TestDefaults(t *testing.T) {
	c := Config{Project: "p-1234", Dataset: "d"}.WithDefaults()
	require.Equal(t, "d", c.StagingDataset)
	require.Equal(t, 24*time.Hour, time.Duration(c.StagingExpiration))
	require.Equal(t, 4, c.MergeParallelism)
	require.Equal(t, config.ByteSize(8<<20), c.RequestBytes)
	require.True(t, *c.Cluster)
	require.Equal(t, "DAY", c.PartitionGranularity)
}

func TestDestType(t *testing.T) {
	for _, c := range []struct {
		t    schema.Type
		want colType
	}{
		{schema.Type{Kind: schema.KindUint, Name: "int unsigned"}, tInt},
		{schema.Type{Kind: schema.KindUint, Name: "tinyint unsigned"}, tInt},
		{schema.Type{Kind: schema.KindUint, Name: "bigint unsigned"}, tNumeric},
		{schema.Type{Kind: schema.KindDecimal, Precision: 12, Scale: 2}, tNumeric},
		{schema.Type{Kind: schema.KindDecimal, Precision: 38, Scale: 9}, tNumeric},
		{schema.Type{Kind: schema.KindDecimal, Precision: 38, Scale: 10}, tBigNumeric},
		{schema.Type{Kind: schema.KindDecimal, Precision: 65, Scale: 30}, tBigNumeric},
		{schema.Type{Kind: schema.KindDecimal, Precision: 76, Scale: 0}, tString},
		{schema.Type{Kind: schema.KindDecimal}, tString},
		{schema.Type{Kind: schema.KindArray, Elem: &schema.Type{Kind: schema.KindInt}}, tJSON},
		{schema.Type{Kind: schema.KindJSON}, tJSON},
		{schema.Type{Kind: schema.KindDateTime}, tDateTime},
		{schema.Type{Kind: schema.KindUnknown, Name: "interval"}, tString},
	} {
		require.Equal(t, c.want, destType(c.t), "%+v", c.t)
	}
	require.True(t, widens(tInt, tNumeric))
	require.True(t, widens(tNumeric, tBigNumeric))
	require.False(t, widens(tBigNumeric, tNumeric))
	require.False(t, widens(tString, tInt))
}

// TestUnrepresentable: values a BigQuery column cannot hold exactly are
// refused with the reason (never the value).
func TestUnrepresentable(t *testing.T) {
	for _, c := range []struct {
		typ  colType
		v    schema.Value
		want string
	}{
		{tNumeric, schema.MustDecimal("NaN"), "NUMERIC has no NaN"},
		{tNumeric, schema.MustDecimal("0.0000000001"), "more than 9 fractional digits"},
		{tNumeric, schema.MustDecimal("100000000000000000000000000000"), "out of range for NUMERIC"},
		{tBigNumeric, schema.MustDecimal("100000000000000000000000000000000000000"), "out of range for BIGNUMERIC"},
		{tInt, schema.Uint(math.MaxUint64), "out of range for INT64"},
		{tTimestamp, schema.Timestamp(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)), "outside TIMESTAMP's 1 to 9999"},
		{tDate, schema.Date(10000, 1, 1), "outside DATE's 1 to 9999"},
		{tTime, schema.TimeOfDay(86400e6), "24:00:00 has no TIME"},
		{tString, schema.String(string(make([]byte, 2000))), "exceed one Storage Write API request"},
		{tBool, schema.Int(1), "does not fit BOOL"},
		// found: PARSE_JSON refused these, and stopped every batch
		{tJSON, schema.JSON(`{"huge": 1e400}`), "beyond a float64's range"},
		{tJSON, schema.JSON(`{"n": 18446744073709551617}`), "more digits than a float64 holds"},
		{tJSON, schema.JSON(`{"n": 1.0000000000000000000001}`), "more digits than a float64 holds"},
	} {
		b, problem := appendValue(nil, 1, c.typ, c.v, 1000)
		require.Contains(t, problem, c.want, "%s %s", c.typ, c.v.Kind())
		require.Empty(t, b, "nothing is written for a refused value")
	}
	// and what fits is encoded as the wire type's protobuf field
	b, problem := appendValue(nil, 3, tTimestamp, schema.Timestamp(time.Date(2024, 2, 29, 12, 0, 0, 123456000, time.UTC)), 1000)
	require.Empty(t, problem)
	num, typ, n := protowire.ConsumeTag(b)
	require.Equal(t, protowire.Number(3), num)
	require.Equal(t, protowire.VarintType, typ)
	us, _ := protowire.ConsumeVarint(b[n:])
	require.Equal(t, time.Date(2024, 2, 29, 12, 0, 0, 123456000, time.UTC).UnixMicro(), int64(us))
	b, problem = appendValue(nil, 1, tDateTime, schema.DateTime(time.Date(1, 1, 1, 0, 0, 0, 500000000, time.UTC)), 1000)
	require.Empty(t, problem)
	s, _ := protowire.ConsumeString(b[1:])
	require.Equal(t, "0001-01-01 00:00:00.5", s)
}
