package store

// migrations is the one schema of both dialects. {{blob}} and {{bigint}} are
// replaced per dialect; times are unix microseconds in bigint columns so that both
// dialects store them alike. Append only: never edit a migration that has shipped.
var migrations = []string{
	`CREATE TABLE cdcd_connections (
		name       TEXT PRIMARY KEY,
		type       TEXT NOT NULL,
		config     TEXT NOT NULL,
		created_at {{bigint}} NOT NULL,
		updated_at {{bigint}} NOT NULL
	);
	CREATE TABLE cdcd_pipelines (
		name       TEXT PRIMARY KEY,
		spec       TEXT NOT NULL,
		paused     {{bigint}} NOT NULL DEFAULT 0,
		state      TEXT NOT NULL DEFAULT 'created',
		last_error TEXT NOT NULL DEFAULT '',
		generation {{bigint}} NOT NULL DEFAULT 1,
		created_at {{bigint}} NOT NULL,
		updated_at {{bigint}} NOT NULL
	);
	CREATE TABLE cdcd_pipeline_connections (
		pipeline   TEXT NOT NULL REFERENCES cdcd_pipelines(name) ON DELETE CASCADE,
		connection TEXT NOT NULL,
		PRIMARY KEY (pipeline, connection)
	);
	CREATE TABLE cdcd_offsets (
		pipeline   TEXT PRIMARY KEY,
		epoch      {{bigint}} NOT NULL,
		position   {{blob}},
		updated_at {{bigint}} NOT NULL
	);
	CREATE TABLE cdcd_schema_versions (
		pipeline   TEXT NOT NULL,
		namespace  TEXT NOT NULL,
		name       TEXT NOT NULL,
		version    {{bigint}} NOT NULL,
		position   {{blob}} NOT NULL,
		shape      TEXT NOT NULL,
		created_at {{bigint}} NOT NULL,
		PRIMARY KEY (pipeline, namespace, name, version)
	);
	CREATE TABLE cdcd_snapshot_progress (
		pipeline       TEXT NOT NULL,
		namespace      TEXT NOT NULL,
		name           TEXT NOT NULL,
		rows_done      {{bigint}} NOT NULL,
		rows_estimated {{bigint}} NOT NULL,
		done           {{bigint}} NOT NULL,
		state          {{blob}},
		updated_at     {{bigint}} NOT NULL,
		PRIMARY KEY (pipeline, namespace, name)
	);
	CREATE TABLE cdcd_tokens (
		id           TEXT PRIMARY KEY,
		name         TEXT NOT NULL,
		hash         TEXT NOT NULL UNIQUE,
		created_at   {{bigint}} NOT NULL,
		last_used_at {{bigint}} NOT NULL DEFAULT 0
	);`,
	`CREATE TABLE cdcd_holds (
		pipeline    TEXT NOT NULL,
		namespace   TEXT NOT NULL,
		name        TEXT NOT NULL,
		status      TEXT NOT NULL,
		proposal    TEXT NOT NULL,
		since       {{blob}},
		watermark   {{blob}},
		last_key    {{blob}},
		held        {{bigint}} NOT NULL DEFAULT 0,
		drained     {{bigint}} NOT NULL DEFAULT 0,
		dropped     {{bigint}} NOT NULL DEFAULT 0,
		created_at  {{bigint}} NOT NULL,
		resolved_at {{bigint}} NOT NULL DEFAULT 0,
		PRIMARY KEY (pipeline, namespace, name)
	);
	CREATE TABLE cdcd_held_changes (
		pipeline  TEXT NOT NULL,
		namespace TEXT NOT NULL,
		name      TEXT NOT NULL,
		seq       {{bigint}} NOT NULL,
		entry     TEXT NOT NULL,
		PRIMARY KEY (pipeline, namespace, name, seq)
	);`,
	`CREATE TABLE cdcd_skipped (
		pipeline   TEXT NOT NULL,
		seq        {{bigint}} NOT NULL,
		namespace  TEXT NOT NULL,
		name       TEXT NOT NULL,
		position   {{blob}},
		transform  TEXT NOT NULL,
		error      TEXT NOT NULL,
		created_at {{bigint}} NOT NULL,
		PRIMARY KEY (pipeline, seq)
	);`,
	`ALTER TABLE cdcd_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
	ALTER TABLE cdcd_tokens ADD COLUMN expires_at {{bigint}} NOT NULL DEFAULT 0;
	CREATE TABLE cdcd_audit (
		id         TEXT PRIMARY KEY,
		at         {{bigint}} NOT NULL,
		token_id   TEXT NOT NULL,
		token_name TEXT NOT NULL,
		action     TEXT NOT NULL,
		target     TEXT NOT NULL,
		status     {{bigint}} NOT NULL,
		error      TEXT NOT NULL,
		remote     TEXT NOT NULL
	);
	CREATE INDEX cdcd_audit_at ON cdcd_audit (at);`,
	`CREATE TABLE cdcd_events (
		pipeline  TEXT NOT NULL,
		seq       {{bigint}} NOT NULL,
		at        {{bigint}} NOT NULL,
		kind      TEXT NOT NULL,
		level     TEXT NOT NULL,
		tbl       TEXT NOT NULL,
		message   TEXT NOT NULL,
		PRIMARY KEY (pipeline, seq)
	);`,
	`CREATE TABLE cdcd_alert_rules (
		id         {{bigint}} PRIMARY KEY,
		doc        TEXT NOT NULL,
		updated_at {{bigint}} NOT NULL
	);
	CREATE TABLE cdcd_alert_firing (
		rule     TEXT NOT NULL,
		pipeline TEXT NOT NULL,
		doc      TEXT NOT NULL,
		PRIMARY KEY (rule, pipeline)
	);
	CREATE TABLE cdcd_alert_history (
		id        TEXT PRIMARY KEY,
		at        {{bigint}} NOT NULL,
		rule      TEXT NOT NULL,
		pipeline  TEXT NOT NULL,
		status    TEXT NOT NULL,
		channel   TEXT NOT NULL,
		delivered {{bigint}} NOT NULL,
		attempts  {{bigint}} NOT NULL,
		error     TEXT NOT NULL,
		summary   TEXT NOT NULL
	);
	CREATE INDEX cdcd_alert_history_at ON cdcd_alert_history (at);`,
	`CREATE TABLE cdcd_series (
		pipeline TEXT NOT NULL,
		at       {{bigint}} NOT NULL,
		sample   TEXT NOT NULL,
		PRIMARY KEY (pipeline, at)
	);`,
	`CREATE TABLE cdcd_pipeline_stats (
		pipeline   TEXT PRIMARY KEY,
		stats      TEXT NOT NULL,
		updated_at {{bigint}} NOT NULL
	);`,
	// a table's resync, requested and not started (sources.SnapshotProgress.Resync)
	`ALTER TABLE cdcd_snapshot_progress ADD COLUMN resync {{bigint}} NOT NULL DEFAULT 0;`,
	// verify results (internal/app.VerifyReport), newest kept per pipeline
	`CREATE TABLE cdcd_verifications (
		pipeline TEXT NOT NULL,
		at       {{bigint}} NOT NULL,
		report   TEXT NOT NULL,
		PRIMARY KEY (pipeline, at)
	);`,
}
