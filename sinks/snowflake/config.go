package snowflake

import (
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/youmark/pkcs8"
)

// Config configures the Snowflake sink.
type Config struct {
	// Account is the account identifier (orgname-account_name, or the locator).
	Account string `yaml:"account" json:"account"`
	// User is the Snowflake user the sink logs in as.
	User string `yaml:"user" json:"user"`
	// Role, Warehouse: the session's role and warehouse (the user's defaults when empty).
	Role      string `yaml:"role" json:"role"`
	Warehouse string `yaml:"warehouse" json:"warehouse"`
	// Database and Schema hold the destination tables. The database must exist;
	// the schema is created if missing. Names are used exactly as written
	// (quoted), so write them as Snowflake stores them (usually upper case).
	Database string `yaml:"database" json:"database"`
	Schema   string `yaml:"schema" json:"schema"`

	// PrivateKey is the PEM of the user's PKCS#8 key (key-pair auth, the
	// default). Write it inline, or as ${ENV_VAR} or ${file:/path/key.p8}.
	PrivateKey string `yaml:"private_key" json:"private_key"`
	// PrivateKeyFile is a path to the PEM instead of PrivateKey.
	PrivateKeyFile string `yaml:"private_key_file" json:"private_key_file"`
	// PrivateKeyPassphrase decrypts an encrypted PKCS#8 key.
	PrivateKeyPassphrase string `yaml:"private_key_passphrase" json:"private_key_passphrase"`
	// Password authenticates with a password instead of a key. Snowflake is
	// retiring single-factor passwords for service users, so it needs
	// PasswordAuth: true as an explicit opt-in.
	Password     string `yaml:"password" json:"password"`
	PasswordAuth bool   `yaml:"password_auth" json:"password_auth"`

	// Host, Port and Protocol override the account's endpoint (private link, a
	// proxy, or a local stand-in). Default: <account>.snowflakecomputing.com:443 over https.
	Host     string `yaml:"host" json:"host"`
	Port     int    `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol" json:"protocol"`

	// Stage is the internal stage batches are uploaded to (created in Schema if
	// missing). Default "cdcd_stage".
	Stage string `yaml:"stage" json:"stage"`
	// MergeParallelism is how many tables of one batch are loaded and merged at
	// once. Two MERGEs never run on the same table. Default 4.
	MergeParallelism int `yaml:"merge_parallelism" json:"merge_parallelism"`
	// SpoolDir is where batch files are written before the upload. Default: the
	// system's temporary directory.
	SpoolDir string `yaml:"spool_dir" json:"spool_dir"`
	// QueryTag tags every statement (for cost attribution). Default "cdcd:<pipeline>".
	QueryTag string `yaml:"query_tag" json:"query_tag"`

	// The settings every table sink shares: table_name, delete_mode,
	// metadata_prefix, include_op, include_source_ts, on_unrepresentable.
	sinks.Common `yaml:",inline"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	c.Common = c.Common.WithDefaults()
	if c.Stage == "" {
		c.Stage = "cdcd_stage"
	}
	if c.MergeParallelism == 0 {
		c.MergeParallelism = 4
	}
	if c.Protocol == "" {
		c.Protocol = "https"
	}
	return c
}

var accountRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Validate reports every problem, one per joined error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Account == "" {
		bad("account: required (e.g. myorg-myaccount)")
	} else if !accountRE.MatchString(c.Account) {
		bad("account: %q is not an account identifier", c.Account)
	}
	if c.User == "" {
		bad("user: required")
	}
	if c.Database == "" {
		bad("database: required")
	}
	if c.Schema == "" {
		bad("schema: required")
	}
	for _, n := range []struct{ path, v string }{{"database", c.Database}, {"schema", c.Schema}, {"stage", c.Stage}, {"role", c.Role}, {"warehouse", c.Warehouse}} {
		if len(n.v) > 255 || strings.ContainsRune(n.v, 0) {
			bad("%s: %q is not a Snowflake identifier", n.path, n.v)
		}
	}
	keys := 0
	for _, k := range []string{c.PrivateKey, c.PrivateKeyFile} {
		if k != "" {
			keys++
		}
	}
	switch {
	case keys > 1:
		bad("private_key, private_key_file: set one of them")
	case c.Password != "" && !c.PasswordAuth:
		bad("password: password auth needs password_auth: true (Snowflake is retiring single-factor passwords; use private_key)")
	case c.PasswordAuth && c.Password == "":
		bad("password: required with password_auth: true")
	case c.PasswordAuth && keys > 0:
		bad("password_auth: set either a private key or password auth, not both")
	case !c.PasswordAuth && keys == 0:
		bad("private_key: required (the PEM of a PKCS#8 key: inline, ${ENV_VAR} or ${file:/path}; or private_key_file)")
	}
	if keys == 1 && !c.PasswordAuth {
		if _, err := c.rsaKey(); err != nil {
			bad("%v", err)
		}
	}
	if c.Protocol != "https" && c.Protocol != "http" {
		bad("protocol: must be https or http, got %q", c.Protocol)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("port: %d is not a port", c.Port)
	}
	if c.MergeParallelism < 1 || c.MergeParallelism > 32 {
		bad("merge_parallelism: must be between 1 and 32, got %d", c.MergeParallelism)
	}
	errs = append(errs, c.Common.Problems()...)
	return errors.Join(errs...)
}

// rsaKey reads and decrypts the private key. Errors name the setting, never
// the key or the passphrase.
func (c Config) rsaKey() (*rsa.PrivateKey, error) {
	field, text := "private_key", c.PrivateKey
	if c.PrivateKeyFile != "" {
		field = "private_key_file"
		b, err := os.ReadFile(c.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("private_key_file: %w", err)
		}
		text = string(b)
	}
	block, _ := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil {
		return nil, fmt.Errorf("%s: not a PEM block (want -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)", field)
	}
	var pass []byte
	switch block.Type {
	case "ENCRYPTED PRIVATE KEY":
		if c.PrivateKeyPassphrase == "" {
			return nil, fmt.Errorf("private_key_passphrase: required, the key in %s is encrypted", field)
		}
		pass = []byte(c.PrivateKeyPassphrase)
	case "PRIVATE KEY":
	default:
		return nil, fmt.Errorf("%s: a %q PEM block; Snowflake key-pair auth takes a PKCS#8 key (openssl pkcs8 -topk8 converts one)", field, block.Type)
	}
	key, err := pkcs8.ParsePKCS8PrivateKeyRSA(block.Bytes, pass)
	if err != nil {
		if pass != nil {
			return nil, fmt.Errorf("%s: cannot decrypt the key (wrong private_key_passphrase?) or it is not an RSA key", field)
		}
		return nil, fmt.Errorf("%s: not an RSA PKCS#8 key: %v", field, err)
	}
	return key, nil
}
