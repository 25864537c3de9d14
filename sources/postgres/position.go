package postgres

import (
	"fmt"
	"math"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/jackc/pglogrepl"
)

// Positions (offsets tuple encoding):
//
//	snapshot change      (0, consistentLSN, run, part, row)
//	snapshot checkpoint  (0, consistentLSN, run, part, MaxUint64)
//	stream change        (1, commitLSN, seq)
//	stream checkpoint    (1, commitLSN, MaxUint64, endLSN)
//
// run is the attempt's lease epoch: a snapshot resumed after a crash reads chunks
// in a different order than the attempt before it, so its positions must follow
// everything that attempt may have written (a position is never reused for a
// different change). Every snapshot position sorts before every stream position, so a snapshot row's
// version is older than any streamed change of that row. commitLSN (the commit
// record's LSN, known at BEGIN) orders transactions in commit order and is unique,
// so changes of a transaction larger than a batch get positions before its COMMIT
// arrives; endLSN (the byte after the commit record) is what is acknowledged and
// where a restart resumes, so a committed transaction is never delivered again.
// A keepalive checkpoint is (1, walEnd-1, MaxUint64, walEnd): the server has
// sent every transaction whose commit record starts below walEnd, and the next
// one may start exactly at walEnd, so the checkpoint must sort below
// (1, walEnd, 0).
const (
	phaseSnapshot = 0
	phaseStream   = 1
)

func snapshotPos(consistent pglogrepl.LSN, run, part, row uint64) offsets.Position {
	p := offsets.AppendUint(nil, phaseSnapshot)
	p = offsets.AppendUint(p, uint64(consistent))
	p = offsets.AppendUint(p, run)
	p = offsets.AppendUint(p, part)
	return offsets.AppendUint(p, row)
}

func streamPos(commit pglogrepl.LSN, seq uint64) offsets.Position {
	p := offsets.AppendUint(nil, phaseStream)
	p = offsets.AppendUint(p, uint64(commit))
	return offsets.AppendUint(p, seq)
}

func streamCheckpoint(commit, end pglogrepl.LSN) offsets.Position {
	return offsets.AppendUint(streamPos(commit, math.MaxUint64), uint64(end))
}

// checkpoint is a decoded checkpoint position.
type checkpoint struct {
	phase      uint64
	consistent pglogrepl.LSN // snapshot: the slot's consistent point
	run        uint64        // snapshot: the attempt that emitted it
	part       uint64        // snapshot: the last part emitted
	commit     pglogrepl.LSN // stream: the commit record of the last transaction
	end        pglogrepl.LSN // stream: where to resume
}

func decodeCheckpoint(p offsets.Position) (checkpoint, error) {
	d := offsets.NewDecoder(p)
	var c checkpoint
	c.phase = d.Uint()
	switch c.phase {
	case phaseSnapshot:
		c.consistent = pglogrepl.LSN(d.Uint())
		c.run = d.Uint()
		c.part = d.Uint()
		if d.Uint() != math.MaxUint64 {
			return c, component.Permanent(fmt.Errorf("position %s is a change, not a checkpoint", p))
		}
	case phaseStream:
		c.commit = pglogrepl.LSN(d.Uint())
		if d.Uint() != math.MaxUint64 {
			return c, component.Permanent(fmt.Errorf("position %s is a change, not a checkpoint", p))
		}
		c.end = pglogrepl.LSN(d.Uint())
	default:
		return c, component.Permanent(fmt.Errorf("position %s is not a Postgres source position", p))
	}
	if err := d.Done(); err != nil {
		return c, component.Permanent(fmt.Errorf("position %s is not a Postgres source position: %w", p, err))
	}
	return c, nil
}

// Describe renders a position for people: "snapshot part 12 (consistent point
// 0/16B3748)" or "lsn 0/16B3790".
func Describe(p offsets.Position) string {
	c, err := decodeCheckpoint(p)
	if err != nil {
		return p.String()
	}
	if c.phase == phaseSnapshot {
		return fmt.Sprintf("snapshot part %d (consistent point %s)", c.part, c.consistent)
	}
	return "lsn " + c.end.String()
}
