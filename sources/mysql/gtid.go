package mysql

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
)

// gtidTracker keeps the executed GTID set of the stream as it commits.
//
// MariaDB: one GTID per replication domain, compared by domain and sequence
// only. After a failover the server id changes while the domain's sequence goes
// on, so the server id is kept for the string but never compared.
// MySQL: a set of uuid:intervals (go-mysql's MysqlGTIDSet).
type gtidTracker struct {
	flavor  string
	enabled bool
	maria   map[uint32]mariaGTID
	mysql   *gmysql.MysqlGTIDSet
	pending string // the GTID of the transaction being read
}

type mariaGTID struct {
	server uint32
	seq    uint64
}

func newGTIDTracker(flavor, start string) *gtidTracker {
	t := &gtidTracker{flavor: flavor, enabled: start != "", maria: map[uint32]mariaGTID{}}
	if flavor == gmysql.MariaDBFlavor {
		for _, g := range strings.Split(start, ",") {
			if d, s, n, err := parseMariaGTID(strings.TrimSpace(g)); err == nil {
				t.maria[d] = mariaGTID{s, n}
			}
		}
		return t
	}
	set, err := gmysql.ParseMysqlGTIDSet(start)
	if err != nil {
		set, _ = gmysql.ParseMysqlGTIDSet("")
	}
	t.mysql = set.(*gmysql.MysqlGTIDSet)
	return t
}

// parseMariaGTID reads domain-server-seq.
func parseMariaGTID(s string) (domain, server uint32, seq uint64, err error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("bad MariaDB GTID %q", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	n, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, fmt.Errorf("bad MariaDB GTID %q", s)
	}
	return uint32(d), uint32(sv), n, nil
}

// begin records the GTID of the transaction that starts.
func (t *gtidTracker) begin(gtid string) { t.pending = gtid }

// commit adds the pending GTID to the set.
func (t *gtidTracker) commit() {
	if t.pending == "" {
		return
	}
	g := t.pending
	t.pending = ""
	t.enabled = true
	if t.flavor == gmysql.MariaDBFlavor {
		d, s, n, err := parseMariaGTID(g)
		if err != nil {
			return
		}
		if cur, ok := t.maria[d]; !ok || n > cur.seq {
			t.maria[d] = mariaGTID{s, n}
		}
		return
	}
	_ = t.mysql.Update(g)
}

// String renders the set as the server takes it to resume; "" when the stream
// has no GTIDs (file:pos mode).
func (t *gtidTracker) String() string {
	if !t.enabled {
		return ""
	}
	if t.flavor == gmysql.MariaDBFlavor {
		domains := make([]uint32, 0, len(t.maria))
		for d := range t.maria {
			domains = append(domains, d)
		}
		sort.Slice(domains, func(i, j int) bool { return domains[i] < domains[j] })
		parts := make([]string, len(domains))
		for i, d := range domains {
			parts[i] = fmt.Sprintf("%d-%d-%d", d, t.maria[d].server, t.maria[d].seq)
		}
		return strings.Join(parts, ",")
	}
	return t.mysql.String()
}
