// Package sources declares what a change-data source is: the Source interface
// (Open at a position, Read batches, Ack durable positions, Close), the optional
// capabilities a source may have (Checker, StatusReporter), the snapshot progress it
// checkpoints, and the Factory that builds one from config.
//
// Implementations live in sub-packages (postgres, mysql, datagen) and import only
// schema and offsets of cdcd's packages. Every one passes sourcetest.Run.
//
// Concurrency: the engine calls Open, Read and Close from one goroutine; Ack may be
// called concurrently with Read. See each method.
package sources
