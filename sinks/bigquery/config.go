package bigquery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/sinks"
)

// Config configures the BigQuery sink.
type Config struct {
	// Project is the Google Cloud project that holds Dataset and runs the jobs.
	Project string `yaml:"project" json:"project"`
	// Dataset holds the destination tables; it is created (in Location) if missing.
	Dataset string `yaml:"dataset" json:"dataset"`
	// Location is the dataset's and the jobs' location (e.g. US, EU,
	// europe-west1). Default: BigQuery's (US) for a new dataset, the dataset's
	// for an existing one.
	Location string `yaml:"location" json:"location"`

	// CredentialsJSON is a service-account key (the JSON file's content):
	// inline, ${ENV_VAR} or ${file:/path/key.json}. CredentialsFile is a path to
	// it instead. With neither, Application Default Credentials are used
	// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, or the metadata server).
	CredentialsJSON string `yaml:"credentials_json" json:"credentials_json"`
	CredentialsFile string `yaml:"credentials_file" json:"credentials_file"`

	// Endpoint and StorageEndpoint override the REST API
	// (https://bigquery.googleapis.com) and the Storage Write API's gRPC
	// endpoint (bigquerystorage.googleapis.com:443): for private endpoints or a
	// local emulator. NoAuth sends no credentials and speaks plain gRPC; it is
	// for emulators only and needs both endpoints.
	Endpoint        string `yaml:"endpoint" json:"endpoint"`
	StorageEndpoint string `yaml:"storage_endpoint" json:"storage_endpoint"`
	NoAuth          bool   `yaml:"no_auth" json:"no_auth"`

	// StagingDataset holds the per-batch raw and staging tables. Default: Dataset.
	StagingDataset string `yaml:"staging_dataset" json:"staging_dataset"`
	// StagingExpiration is how long a raw or staging table left by a crash lives
	// before BigQuery drops it (a finished batch drops its own). Default 24h.
	StagingExpiration config.Duration `yaml:"staging_expiration" json:"staging_expiration"`
	// MergeParallelism is how many tables of one batch are loaded and merged at
	// once. Two MERGEs never run on the same table. Default 4.
	MergeParallelism int `yaml:"merge_parallelism" json:"merge_parallelism"`
	// RequestBytes caps one Storage Write API append (the API takes 10 MB).
	// Default 8 MiB.
	RequestBytes config.ByteSize `yaml:"request_bytes" json:"request_bytes"`

	// PartitionField time-partitions new destination tables by this column
	// (a TIMESTAMP, DATE or DATETIME column of the table, or the metadata
	// column <prefix>synced_at); tables without it are not partitioned.
	// PartitionGranularity is HOUR, DAY (default), MONTH or YEAR.
	PartitionField       string `yaml:"partition_field" json:"partition_field"`
	PartitionGranularity string `yaml:"partition_granularity" json:"partition_granularity"`
	// Cluster clusters new destination tables by their first four
	// primary-key columns of clusterable types (MERGEs then prune). Default true.
	Cluster *bool `yaml:"cluster" json:"cluster"`
	// Labels are added to every job the sink runs (cost attribution), with
	// cdcd_pipeline.
	Labels map[string]string `yaml:"labels" json:"labels"`

	// The settings every table sink shares: table_name, delete_mode,
	// metadata_prefix, include_op, include_source_ts, on_unrepresentable.
	sinks.Common `yaml:",inline"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	c.Common = c.Common.WithDefaults()
	if c.StagingDataset == "" {
		c.StagingDataset = c.Dataset
	}
	if c.StagingExpiration == 0 {
		c.StagingExpiration = config.Duration(24 * time.Hour)
	}
	if c.MergeParallelism == 0 {
		c.MergeParallelism = 4
	}
	if c.RequestBytes == 0 {
		c.RequestBytes = config.ByteSize(8 << 20)
	}
	if c.PartitionGranularity == "" {
		c.PartitionGranularity = "DAY"
	}
	c.PartitionGranularity = strings.ToUpper(c.PartitionGranularity)
	if c.Cluster == nil {
		t := true
		c.Cluster = &t
	}
	return c
}

var (
	projectRE = regexp.MustCompile(`^([a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{0,61}[a-z0-9]$`)
	datasetRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	labelRE   = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	valueRE   = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
)

// Validate reports every problem, one per joined error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Project == "" {
		bad("project: required (the Google Cloud project id)")
	} else if !projectRE.MatchString(c.Project) {
		bad("project: %q is not a project id (lower-case letters, digits and hyphens, starting with a letter)", c.Project)
	}
	if c.Dataset == "" {
		bad("dataset: required")
	}
	for _, d := range []struct{ path, v string }{{"dataset", c.Dataset}, {"staging_dataset", c.StagingDataset}} {
		if d.v != "" && (!datasetRE.MatchString(d.v) || len(d.v) > 1024) {
			bad("%s: %q is not a dataset id (letters, digits and underscores)", d.path, d.v)
		}
	}
	if c.CredentialsJSON != "" && c.CredentialsFile != "" {
		bad("credentials_json, credentials_file: set one of them")
	}
	if c.NoAuth && (c.CredentialsJSON != "" || c.CredentialsFile != "") {
		bad("no_auth: set either credentials or no_auth, not both")
	}
	if c.NoAuth && (c.Endpoint == "" || c.StorageEndpoint == "") {
		bad("no_auth: is for emulators and needs endpoint and storage_endpoint")
	}
	if c.CredentialsJSON != "" || c.CredentialsFile != "" {
		if _, err := c.credentials(); err != nil {
			bad("%v", err)
		}
	}
	if time.Duration(c.StagingExpiration) < time.Hour {
		bad("staging_expiration: must be at least 1h, got %s (a batch's raw table must outlive its merge)", time.Duration(c.StagingExpiration))
	}
	if c.MergeParallelism < 1 || c.MergeParallelism > 32 {
		bad("merge_parallelism: must be between 1 and 32, got %d", c.MergeParallelism)
	}
	if c.RequestBytes < 64<<10 || c.RequestBytes > 9<<20 {
		bad("request_bytes: must be between 64KiB and 9MiB (the Storage Write API takes 10 MB per append), got %d", c.RequestBytes)
	}
	switch c.PartitionGranularity {
	case "HOUR", "DAY", "MONTH", "YEAR":
	default:
		bad("partition_granularity: must be HOUR, DAY, MONTH or YEAR, got %q", c.PartitionGranularity)
	}
	for k, v := range c.Labels {
		if !labelRE.MatchString(k) {
			bad("labels.%s: a label key is 1 to 63 lower-case letters, digits, _ or -, starting with a letter", k)
		}
		if !valueRE.MatchString(v) {
			bad("labels.%s: a label value is up to 63 lower-case letters, digits, _ or -", k)
		}
	}
	errs = append(errs, c.Common.Problems()...)
	return errors.Join(errs...)
}

// credentials returns the service-account key's JSON, checked to be one.
// Errors name the setting, never the key.
func (c Config) credentials() ([]byte, error) {
	field, b := "credentials_json", []byte(c.CredentialsJSON)
	if c.CredentialsFile != "" {
		field = "credentials_file"
		var err error
		if b, err = os.ReadFile(c.CredentialsFile); err != nil {
			return nil, fmt.Errorf("credentials_file: %w", err)
		}
	}
	var key struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &key); err != nil {
		return nil, fmt.Errorf("%s: not a JSON service-account key (download one under IAM > Service accounts > Keys)", field)
	}
	if key.Type != "service_account" || key.ClientEmail == "" || key.PrivateKey == "" {
		return nil, fmt.Errorf("%s: want a service-account key (type service_account, with client_email and private_key), got type %q", field, key.Type)
	}
	return b, nil
}
