package mysql

import (
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/stretchr/testify/require"
)

func TestMariaDBGTIDsAreComparedByDomain(t *testing.T) {
	t.Parallel()
	tr := newGTIDTracker(gmysql.MariaDBFlavor, "0-1-100,1-1-7")
	tr.begin("0-1-101")
	tr.commit()
	require.Equal(t, "0-1-101,1-1-7", tr.String())
	// a failover: server 2 continues domain 0's sequence
	tr.begin("0-2-102")
	tr.commit()
	require.Equal(t, "0-2-102,1-1-7", tr.String(), "one entry per domain, whatever the server")
	// a stale GTID of the old primary never moves the domain back
	tr.begin("0-1-101")
	tr.commit()
	require.Equal(t, "0-2-102,1-1-7", tr.String())
	// a new domain
	tr.begin("5-3-1")
	tr.commit()
	require.Equal(t, "0-2-102,1-1-7,5-3-1", tr.String())
	_, err := gmysql.ParseMariadbGTIDSet(tr.String())
	require.NoError(t, err, "the server takes the string back")
	require.Equal(t, "", newGTIDTracker(gmysql.MariaDBFlavor, "").String(), "no GTIDs: file:pos mode")
}

func TestMySQLGTIDSet(t *testing.T) {
	t.Parallel()
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	tr := newGTIDTracker(gmysql.MySQLFlavor, a+":1-5")
	tr.begin(a + ":6")
	tr.commit()
	require.Equal(t, a+":1-6", tr.String())
	tr.begin(b + ":1")
	tr.commit()
	require.Equal(t, a+":1-6,"+b+":1", tr.String())
	tr.begin(a + ":8") // a gap stays a gap
	tr.commit()
	require.Equal(t, a+":1-6:8,"+b+":1", tr.String())
	_, err := gmysql.ParseMysqlGTIDSet(tr.String())
	require.NoError(t, err)
}

func TestPositionsOrderAcrossFilesAndChunks(t *testing.T) {
	t.Parallel()
	r := resume{gtid: "0-1-5", file: "binlog.000002", pos: 900}
	seq := []offsets.Position{
		changePos("binlog.000001", 500, 0),
		changePos("binlog.000001", 500, 1),
		checkpointPos("binlog.000001", 600, r), // the XID after the rows
		snapshotRowPos("binlog.000001", 699, 7, 1, 0),
		snapshotRowPos("binlog.000001", 699, 7, 1, 1),
		chunkCheckpointPos("binlog.000001", 699, 7, 1, r),
		snapshotRowPos("binlog.000001", 699, 7, 2, 0), // another chunk at the same place
		chunkCheckpointPos("binlog.000001", 699, 7, 2, r),
		changePos("binlog.000001", 700, 0),
		changePos("binlog.000002", 4, 0), // rotation: file 2 sorts after every position of file 1
	}
	for i := 1; i < len(seq); i++ {
		require.Equal(t, 1, seq[i].Compare(seq[i-1]), "%d: %s after %s", i, seq[i], seq[i-1])
	}
	for _, p := range []offsets.Position{checkpointPos("binlog.000001", 600, r), chunkCheckpointPos("binlog.000001", 699, 7, 2, r)} {
		got, err := decodeCheckpoint(p)
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	_, err := decodeCheckpoint(changePos("binlog.000001", 500, 0))
	require.Error(t, err)
	require.Equal(t, uint64(42), fileIndex("mysql-bin.000042"))
}
