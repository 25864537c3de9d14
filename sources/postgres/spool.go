package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jackc/pglogrepl"
)

// With stream_in_progress, Postgres (protocol version 2, streaming 'on') sends a
// large transaction in chunks before it commits, interleaved with other
// transactions. Each chunk's messages are appended to a spool file per top-level
// transaction, tagged with the (sub)transaction that made them; StreamAbort
// deletes the file or marks a subtransaction aborted, and StreamCommit replays the
// file through the ordinary decode path as one transaction. Memory stays bounded:
// the spool is on disk and replay emits batches as it goes. The spool needs no
// fsync: after a crash Postgres streams the transaction again from the checkpoint.

type spool struct {
	dir     string
	files   map[uint32]*spoolFile
	aborted map[uint32]map[uint32]bool // top-level xid → aborted subtransactions
}

type spoolFile struct {
	f *os.File
	w *bufio.Writer
}

func newSpool(dir string) (*spool, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "cdcd-spool-")
		if err != nil {
			return nil, fmt.Errorf("create spool dir: %w", err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	return &spool{dir: dir, files: map[uint32]*spoolFile{}, aborted: map[uint32]map[uint32]bool{}}, nil
}

func (s *spool) path(xid uint32) string {
	return filepath.Join(s.dir, "xid-"+strconv.FormatUint(uint64(xid), 10)+".spool")
}

// add appends one raw pgoutput message made by subxid to top-level xid's file.
func (s *spool) add(xid, subxid uint32, data []byte) error {
	sf, ok := s.files[xid]
	if !ok {
		f, err := os.Create(s.path(xid))
		if err != nil {
			return fmt.Errorf("spool transaction %d: %w", xid, err)
		}
		sf = &spoolFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}
		s.files[xid] = sf
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	binary.BigEndian.PutUint32(hdr[4:], subxid)
	if _, err := sf.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("spool transaction %d: %w", xid, err)
	}
	if _, err := sf.w.Write(data); err != nil {
		return fmt.Errorf("spool transaction %d: %w", xid, err)
	}
	return nil
}

// abort discards a transaction, or one of its subtransactions.
func (s *spool) abort(xid, subxid uint32) error {
	if subxid != xid {
		if s.aborted[xid] == nil {
			s.aborted[xid] = map[uint32]bool{}
		}
		s.aborted[xid][subxid] = true
		return nil
	}
	return s.drop(xid)
}

func (s *spool) drop(xid uint32) error {
	delete(s.aborted, xid)
	sf, ok := s.files[xid]
	if !ok {
		return nil
	}
	delete(s.files, xid)
	sf.f.Close()
	if err := os.Remove(s.path(xid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// replay calls f with every message of xid not made by an aborted
// subtransaction, in order, then deletes the spool.
func (s *spool) replay(ctx context.Context, xid uint32, f func(pglogrepl.Message) error) error {
	defer s.drop(xid)
	sf, ok := s.files[xid]
	if !ok {
		return nil // a streamed transaction with no changes for us
	}
	if err := sf.w.Flush(); err != nil {
		return err
	}
	if _, err := sf.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(sf.f, 256<<10)
	aborted := s.aborted[xid]
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read spool of transaction %d: %w", xid, err)
		}
		data := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("read spool of transaction %d: %w", xid, err)
		}
		if aborted[binary.BigEndian.Uint32(hdr[4:])] {
			continue
		}
		msg, err := pglogrepl.ParseV2(data, true)
		if err != nil {
			return permanent(fmt.Errorf("decode spooled message of transaction %d: %w", xid, err))
		}
		if err := f(unwrapV2(msg)); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// close deletes every spool file and, when the directory was a temporary one, it.
func (s *spool) close(temp bool) {
	for xid := range s.files {
		_ = s.drop(xid)
	}
	if temp {
		_ = os.RemoveAll(s.dir)
	}
}

// unwrapV2 returns the protocol-1 message inside a protocol-2 one.
func unwrapV2(msg pglogrepl.Message) pglogrepl.Message {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		return &m.RelationMessage
	case *pglogrepl.InsertMessageV2:
		return &m.InsertMessage
	case *pglogrepl.UpdateMessageV2:
		return &m.UpdateMessage
	case *pglogrepl.DeleteMessageV2:
		return &m.DeleteMessage
	case *pglogrepl.TruncateMessageV2:
		return &m.TruncateMessage
	case *pglogrepl.TypeMessageV2:
		return &m.TypeMessage
	case *pglogrepl.LogicalDecodingMessageV2:
		return &m.LogicalDecodingMessage
	}
	return msg
}

// streamXid returns the (sub)transaction id a protocol-2 message carries in a stream.
func streamXid(msg pglogrepl.Message) uint32 {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		return m.Xid
	case *pglogrepl.InsertMessageV2:
		return m.Xid
	case *pglogrepl.UpdateMessageV2:
		return m.Xid
	case *pglogrepl.DeleteMessageV2:
		return m.Xid
	case *pglogrepl.TruncateMessageV2:
		return m.Xid
	case *pglogrepl.TypeMessageV2:
		return m.Xid
	case *pglogrepl.LogicalDecodingMessageV2:
		return m.Xid
	}
	return 0
}
