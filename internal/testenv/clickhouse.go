package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ClickHouse is a private clickhouse-server (Debian's package: 18.16, the only
// one installable here; its limits are in docs/testing.md) with user default and
// no password on 127.0.0.1.
type ClickHouse struct {
	Port     int // native protocol
	HTTPPort int
	Dir      string
	proc     *process
}

// StartClickHouse starts a private ClickHouse server for t and stops it in t.Cleanup.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	bin, err := findBinary("/usr/sbin/clickhouse-server", "clickhouse-server", "/usr/bin/clickhouse-server")
	if err != nil {
		unavailable(t, "clickhouse: %v", err)
	}
	dir := mkdirOwned(t, "cdcd-ch-", os.Getuid(), os.Getgid())
	t.Cleanup(func() { os.RemoveAll(dir) })
	ch := &ClickHouse{Port: FreePort(t), HTTPPort: FreePort(t), Dir: dir}
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Sprintf(`<yandex>
<logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/err.log</errorlog><size>100M</size><count>1</count></logger>
<listen_host>127.0.0.1</listen_host><tcp_port>%[2]d</tcp_port><http_port>%[3]d</http_port>
<path>%[1]s/data/</path><tmp_path>%[1]s/tmp/</tmp_path><user_files_path>%[1]s/user_files/</user_files_path>
<format_schema_path>%[1]s/format_schemas/</format_schema_path>
<users_config>%[1]s/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
<timezone>UTC</timezone><mark_cache_size>268435456</mark_cache_size><mlock_executable>false</mlock_executable>
</yandex>`, dir, ch.Port, ch.HTTPPort)
	users := `<yandex><profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default></default></quotas></yandex>`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	ch.proc = &process{name: bin, args: []string{"--config-file=" + filepath.Join(dir, "config.xml")}, dir: dir, log: filepath.Join(dir, "stdout.log")}
	t.Cleanup(ch.Stop)
	if err := ch.start(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func (ch *ClickHouse) start() error {
	if err := ch.proc.start(); err != nil {
		return err
	}
	return ch.proc.waitReady(func(ctx context.Context) error {
		return getOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/ping", ch.HTTPPort))
	})
}

// Addr returns the native protocol's host:port.
func (ch *ClickHouse) Addr() string { return fmt.Sprintf("127.0.0.1:%d", ch.Port) }

// Kill SIGKILLs the server.
func (ch *ClickHouse) Kill() { ch.proc.signal(syscall.SIGKILL, 10*time.Second) }

// Restart starts the server again on the same data and ports.
func (ch *ClickHouse) Restart() error {
	ch.proc.signal(syscall.SIGTERM, 30*time.Second)
	return ch.start()
}

// Freeze stops the server without closing connections (SIGSTOP); Thaw resumes it.
func (ch *ClickHouse) Freeze() { ch.proc.pause(true) }

// Thaw resumes a frozen server.
func (ch *ClickHouse) Thaw() { ch.proc.pause(false) }

// Stop ends the server; it is idempotent. It kills it: 18.16 takes seconds to
// shut down and a test's server holds nothing worth a clean stop.
func (ch *ClickHouse) Stop() { ch.proc.signal(syscall.SIGKILL, 10*time.Second) }
