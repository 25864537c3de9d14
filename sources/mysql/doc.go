// Package mysql is the MySQL and MariaDB source: a lock-free chunked snapshot
// merged into the binlog stream with DBLog windows, then the stream, resumable
// from a GTID set (MySQL), a GTID position compared per domain (MariaDB), or a
// binlog file and position.
//
// The stream is read with go-mysql's BinlogSyncer. Every row event is decoded
// with the columns its own TABLE_MAP event names (binlog_row_metadata=FULL), so
// an event is never read with a later table definition; shapes are registered in
// the schema registry at their binlog position, and a new shape becomes a Delta
// before the rows that carry it.
//
// Snapshot: for each chunk of a table (keyset pagination on the primary key) the
// snapshot asks the stream reader to open a window (from then on the reader
// records the keys of that table it sees), selects the chunk, reads the binlog's
// end position (the high watermark) and hands the rows over; when the reader
// reaches the high watermark, between transactions, it emits the chunk's rows
// except those whose keys changed in the window (the stream already carried a
// newer version). No locks, no RELOAD; a crash loses at most the chunks not yet
// acknowledged, which are read again.
//
// Concurrency: Open, Read, Ack and Close follow sources.Source; the reader and
// snapshot goroutines are owned by the source and stopped by Close.
package mysql
