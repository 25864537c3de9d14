package mysql

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
)

// Positions (offsets tuple encoding):
//
//	change             (1, file, eventStart, row)
//	checkpoint         (1, file, xidStart, MaxUint64, gtid, fileName, nextPos[, pending])
//	snapshot row       (1, file, at, run, chunk, row)
//	snapshot checkpoint (1, file, at, run, chunk, MaxUint64, gtid, fileName, nextPos[, pending])
//
// pending, when present, is what ALTERs before the resume point said about
// tables whose next row event comes after it (added columns' defaults,
// renames): the binlog never says it again.
//
// file is the binlog file's index (its numeric suffix), so versions increase
// across rotations; eventStart is where the row event begins. A checkpoint after a
// transaction sits at the start of its XID event: after the transaction's rows,
// before the next transaction's. Snapshot chunks are emitted when the stream
// reaches their high watermark, between transactions, at = (start of the next
// event) - 1: after every earlier event and checkpoint, before the next event.
// run is the attempt's lease epoch and chunk counts emissions within it, so
// chunks emitted at one place in the binlog, or re-read after a crash, never
// share positions. The resume point (GTID set, and file:pos) rides in every
// checkpoint.
const phaseStream = 1

// resume is where a stream continues.
type resume struct {
	gtid string // the executed GTID set (MySQL) or binlog position (MariaDB); "" for file:pos
	file string
	pos  uint32
	// pending is what DDL before this point said about tables whose next
	// TABLE_MAP comes after it (JSON of []pendingDDL; "" for none): added
	// columns' defaults and renames, which the binlog's rows never repeat.
	pending string
}

// pendingDDL is one table's expectation carried by a checkpoint.
type pendingDDL struct {
	Table  schema.TableID `json:"table"`
	Expect *expectation   `json:"expect"`
}

// fileIndex is the numeric suffix of a binlog file name (binlog.000042 → 42).
func fileIndex(name string) uint64 {
	i := strings.LastIndexByte(name, '.')
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func changePos(file string, eventStart uint32, row int) offsets.Position {
	p := offsets.AppendUint(nil, phaseStream)
	p = offsets.AppendUint(p, fileIndex(file))
	p = offsets.AppendUint(p, uint64(eventStart))
	return offsets.AppendUint(p, uint64(row))
}

// sincePos is a resync's Since for a binlog that ends at file:end now: below
// every event that starts at end or later and every snapshot row emitted at
// end-1 or later (a chunk emitted before the next event is at its start - 1).
func sincePos(file string, end uint32) offsets.Position {
	p := offsets.AppendUint(nil, phaseStream)
	p = offsets.AppendUint(p, fileIndex(file))
	return offsets.AppendUint(p, uint64(end)-1)
}

func snapshotRowPos(file string, at uint32, run, chunk uint64, row int) offsets.Position {
	p := offsets.AppendUint(nil, phaseStream)
	p = offsets.AppendUint(p, fileIndex(file))
	p = offsets.AppendUint(p, uint64(at))
	p = offsets.AppendUint(p, run)
	p = offsets.AppendUint(p, chunk)
	return offsets.AppendUint(p, uint64(row))
}

func chunkCheckpointPos(file string, at uint32, run, chunk uint64, r resume) offsets.Position {
	p := offsets.AppendUint(nil, phaseStream)
	p = offsets.AppendUint(p, fileIndex(file))
	p = offsets.AppendUint(p, uint64(at))
	p = offsets.AppendUint(p, run)
	p = offsets.AppendUint(p, chunk)
	p = offsets.AppendUint(p, math.MaxUint64)
	return appendResume(p, r)
}

func appendResume(p offsets.Position, r resume) offsets.Position {
	p = offsets.AppendString(p, r.gtid)
	p = offsets.AppendString(p, r.file)
	p = offsets.AppendUint(p, uint64(r.pos))
	if r.pending != "" {
		p = offsets.AppendString(p, r.pending)
	}
	return p
}

func checkpointPos(file string, at uint32, r resume) offsets.Position {
	p := offsets.AppendUint(nil, phaseStream)
	p = offsets.AppendUint(p, fileIndex(file))
	p = offsets.AppendUint(p, uint64(at))
	p = offsets.AppendUint(p, math.MaxUint64)
	return appendResume(p, r)
}

// decodeCheckpoint returns the resume point of a checkpoint position.
func decodeCheckpoint(p offsets.Position) (resume, error) {
	d := offsets.NewDecoder(p)
	if d.Uint() != phaseStream {
		return resume{}, component.Permanent(fmt.Errorf("position %s is not a MySQL source checkpoint", p))
	}
	d.Uint()
	d.Uint()
	if x := d.Uint(); x != math.MaxUint64 { // a snapshot checkpoint: run, chunk, then MaxUint64
		d.Uint()
		if d.Uint() != math.MaxUint64 {
			return resume{}, component.Permanent(fmt.Errorf("position %s is a change, not a checkpoint", p))
		}
	}
	r := resume{gtid: d.String(), file: d.String(), pos: uint32(d.Uint())}
	if d.More() {
		r.pending = d.String()
	}
	if err := d.Done(); err != nil {
		return resume{}, component.Permanent(fmt.Errorf("position %s: %w", p, err))
	}
	return r, nil
}
