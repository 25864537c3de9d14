// Package file is a sink that writes JSON lines, one file per destination table,
// for trying cdcd without a warehouse and for debugging.
//
// Each line is one change: {"pos","op","table","version","tx","ts","key","before","after"}.
// A sweep ("op":"s", the end of a table's resync) has no row and a "since"
// position: every key whose last line is before since is gone from the source,
// as if deleted there (State applies it).
// Schema deltas go to <table>.schema.jsonl, with the position where each came
// into force ("pos"). An added column with "existing" (a source-side DEFAULT)
// holds existing.value in every row written before that position: the source
// logged nothing for those rows, so a consumer applies it (State does). The sink is idempotent: a change whose
// position is not past the last line already in its table's file is skipped, so a
// replay after a crash writes nothing twice. Every batch is flushed and fsynced
// before Write returns. On Open a torn last line (a crash mid-write) is cut off.
//
// Concurrency: the engine calls the methods from one goroutine (sinks.Sink).
package file
