package mysql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
)

type problems struct {
	blocking []error
	warnings []error
}

// Check connects and lists every problem that stops the source, each with what
// to change.
func (s *Source) Check(ctx context.Context) error { return s.checkWith(ctx, true) }

// CheckServer implements sources.ServerChecker: Check without the tables.
func (s *Source) CheckServer(ctx context.Context) error { return s.checkWith(ctx, false) }

func (s *Source) checkWith(ctx context.Context, withTables bool) error {
	if s.cfg.tables == nil {
		if err := s.cfg.Validate(); err != nil {
			return err
		}
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	s.qmu.Lock()
	s.query = conn
	s.qmu.Unlock()
	defer func() {
		s.qmu.Lock()
		s.query.Close()
		s.query = nil
		s.qmu.Unlock()
	}()
	flavor := gmysql.MySQLFlavor
	if strings.Contains(strings.ToLower(conn.GetServerVersion()), "mariadb") {
		flavor = gmysql.MariaDBFlavor
	}
	s.mu.Lock() // SourceStatus reads it
	s.flavor = flavor
	s.mu.Unlock()
	var tables []schema.TableID
	if withTables {
		tables = s.cfg.tables
	}
	p := s.check(tables)
	s.setWarnings(p.warnings)
	return errors.Join(p.blocking...)
}

// globalVariables reads every global server variable in one round trip.
func (s *Source) globalVariables() (map[string]string, error) {
	res, err := s.exec("SHOW GLOBAL VARIABLES")
	if err != nil {
		return nil, fmt.Errorf("read the server's variables: %w", err)
	}
	vars := make(map[string]string, res.RowNumber())
	for i := 0; i < res.RowNumber(); i++ {
		name, _ := res.GetString(i, 0)
		value, _ := res.GetString(i, 1)
		vars[strings.ToLower(name)] = value
	}
	return vars, nil
}

// check reads the server's settings, the user's privileges and the tables.
func (s *Source) check(tables []schema.TableID) problems {
	var p problems
	block := func(format string, args ...any) { p.blocking = append(p.blocking, fmt.Errorf(format, args...)) }
	warn := func(format string, args ...any) { p.warnings = append(p.warnings, fmt.Errorf(format, args...)) }
	vars, err := s.globalVariables()
	if err != nil {
		block("%v", err)
		return p
	}
	variable := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	if v, _ := variable("log_bin"); !strings.EqualFold(v, "ON") {
		block("log_bin is %q: start the server with --log-bin", v)
	}
	if v, _ := variable("binlog_format"); !strings.EqualFold(v, "ROW") {
		block("binlog_format is %q: set binlog_format=ROW (SET GLOBAL binlog_format = 'ROW' and in the server config)", v)
	}
	if v, _ := variable("binlog_row_image"); !strings.EqualFold(v, "FULL") {
		block("binlog_row_image is %q: set binlog_row_image=FULL, or updates arrive without their unchanged columns", v)
	}
	if v, ok := variable("binlog_row_metadata"); ok && !strings.EqualFold(v, "FULL") {
		block("binlog_row_metadata is %q: set binlog_row_metadata=FULL so that every row event carries its column names (cdcd never decodes old events with today's table definition)", v)
	} else if !ok {
		block("the server has no binlog_row_metadata (MySQL before 8.0.1, MariaDB before 10.5): row events carry no column names; upgrade the server")
	}
	if v, ok := variable("binlog_row_value_options"); ok && v != "" {
		block("binlog_row_value_options is %q: clear it (PARTIAL_JSON updates carry only a diff)", v)
	}
	if s.flavor == gmysql.MySQLFlavor {
		if v, _ := variable("gtid_mode"); !strings.EqualFold(v, "ON") {
			warn("gtid_mode is %q: cdcd resumes by binlog file and position, which does not survive a failover to a replica; set gtid_mode=ON and enforce_gtid_consistency=ON", v)
		}
	}
	// retention
	var secs int64 = -1
	if v, ok := variable("binlog_expire_logs_seconds"); ok {
		secs, _ = strconv.ParseInt(v, 10, 64)
	}
	if secs <= 0 {
		if v, ok := variable("expire_logs_days"); ok {
			if d, err := strconv.ParseFloat(v, 64); err == nil && d > 0 {
				secs = int64(d * 86400)
			}
		}
	}
	if secs > 0 && secs < 86400 {
		warn("binlogs are kept %d hours: a pipeline stopped longer than that must be resynced; keep them at least 24 hours (binlog_expire_logs_seconds)", secs/3600)
	}
	// the replica id
	if v, _ := variable("server_id"); v == strconv.FormatUint(uint64(s.cfg.ServerID), 10) {
		block("server_id %d is the server's own id: give the pipeline another (server_id in the source config)", s.cfg.ServerID)
	}
	res, err := s.exec("SHOW SLAVE HOSTS")
	if err != nil {
		res, err = s.exec("SHOW REPLICAS") // MySQL 8.4
	}
	if err == nil {
		for i := 0; i < res.RowNumber(); i++ {
			if id, _ := res.GetUint(i, 0); id == uint64(s.cfg.ServerID) {
				block("server_id %d is already used by a replica or another pipeline connected to this server: give each pipeline its own", s.cfg.ServerID)
			}
		}
	}
	// privileges
	if res, err := s.exec("SHOW GRANTS"); err == nil {
		var all strings.Builder
		for i := 0; i < res.RowNumber(); i++ {
			g, _ := res.GetString(i, 0)
			all.WriteString(strings.ToUpper(g))
			all.WriteByte('\n')
		}
		g := all.String()
		super := strings.Contains(g, "ALL PRIVILEGES ON *.*")
		for _, need := range []string{"REPLICATION SLAVE", "REPLICATION CLIENT"} {
			alt := map[string]string{"REPLICATION SLAVE": "REPLICATION REPLICA", "REPLICATION CLIENT": "BINLOG MONITOR"}[need]
			if !super && !strings.Contains(g, need) && !strings.Contains(g, alt) {
				block("the user lacks %s: GRANT %s ON *.* TO the cdcd user", need, need)
			}
		}
	}
	// tables: they exist, are readable, and have primary keys
	for _, id := range tables {
		res, err := s.exec("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'", id.Namespace, id.Name)
		if err != nil {
			block("read the definition of %s: %v", id, err)
			continue
		}
		n, _ := res.GetInt(0, 0)
		exists, err := s.exec("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", id.Namespace, id.Name)
		if err == nil {
			if c, _ := exists.GetInt(0, 0); c == 0 {
				block("table %s does not exist (or the user cannot see it: GRANT SELECT ON %s TO the cdcd user)", id, id)
				continue
			}
		}
		if n == 0 {
			block("table %s has no primary key: cdcd needs one to identify rows (add one, or leave the table out)", id)
		}
	}
	return p
}
