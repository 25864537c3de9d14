// Command cdcd is a change-data-capture replication service: it tails database
// logs (Postgres logical replication, MySQL/MariaDB binlog) and keeps warehouse
// tables continuously in step.
//
//	cdcd serve                      # API, web UI and every stored pipeline
//	cdcd run -f pipelines.yaml      # run the pipelines of a file in the foreground
//	cdcd config check -f FILE       # validate a config file, no I/O
//	cdcd pipelines list|get|apply|pause|resume|delete   # talk to a running server
//	cdcd connections list|get|apply|test|delete
//	cdcd tokens create|list|delete  # API tokens, on the metadata store directly
//	cdcd version
package main
