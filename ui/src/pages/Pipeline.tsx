import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { api, errorText, must, streamEvents, type Event, type SchemaChange, type TableProgress } from '../api';
import type { components } from '../api.gen';
import { Chart, Confirm, ErrorText, StateBadge, usePoll } from '../components';
import { ago, bytes, count, rate, seconds, when } from '../format';
import { can, useSession } from '../session';
import { reason } from './Pipelines';

const windows = ['1h', '6h', '24h', '7d'] as const;
type Window = (typeof windows)[number];

function Charts({ name }: { name: string }) {
  const [win, setWin] = useState<Window>('1h');
  const ts = usePoll(async () => must(await api.GET('/api/v1/pipelines/{name}/timeseries', { params: { path: { name }, query: { window: win } } })), 10000, [name, win]);
  const points = ts.data?.points ?? [];
  const times = points.map((p) => new Date(p.at).getTime());
  return (
    <section aria-labelledby="charts-h">
      <div class="titlebar">
        <h2 id="charts-h">Activity</h2>
        <label>
          Window{' '}
          <select value={win} onChange={(e) => setWin(e.currentTarget.value as Window)}>
            {windows.map((w) => (
              <option key={w} value={w}>
                last {w}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorText error={ts.error} />
      <div class="charts">
        <Chart
          title="Changes per second"
          times={times}
          format={rate}
          series={[
            { name: 'read', values: points.map((p) => p.read_per_sec), cls: 's1' },
            { name: 'written', values: points.map((p) => p.written_per_sec), cls: 's2' },
          ]}
        />
        <Chart title="Lag" times={times} format={seconds} series={[{ name: 'lag', values: points.map((p) => p.lag_seconds), cls: 's3' }]} />
        <Chart
          title="Retained source log"
          times={times}
          format={bytes}
          series={[
            { name: 'retained', values: points.map((p) => p.retained_bytes), cls: 's4' },
            { name: 'behind', values: points.map((p) => p.lag_bytes), cls: 's1' },
          ]}
        />
      </div>
    </section>
  );
}

function Tables({ tables, held, onResync }: { tables: TableProgress[]; held: Set<string>; onResync?: (table: string) => void }) {
  if (!tables.length) return <p class="empty">No table has been read yet.</p>;
  return (
    <div class="scroll" tabIndex={0} role="region" aria-label="Scrollable table">
      <table class="list" data-testid="tables">
        <thead>
          <tr>
            <th>Table</th>
            <th>State</th>
            <th>Snapshot</th>
            <th>Inserts</th>
            <th>Updates</th>
            <th>Deletes</th>
            <th>Last change</th>
            {onResync && <th aria-label="Actions" />}
          </tr>
        </thead>
        <tbody>
          {tables.map((t) => (
            <tr key={t.table} data-table={t.table}>
              <td>{t.table}</td>
              <td>
                <StateBadge state={held.has(t.table) ? 'held' : t.state} />
                {t.error && (
                  <p class="table-error" data-testid="table-error">
                    {t.error}
                  </p>
                )}
              </td>
              <td>
                {t.state === 'snapshotting' ? (
                  <span>
                    {count(t.rows_done)} of {t.rows_estimated === null ? 'unknown' : '~' + count(t.rows_estimated)}
                    {t.eta ? ` · done about ${new Date(t.eta).toLocaleTimeString()}` : ''}
                  </span>
                ) : (
                  <span>{count(t.snapshot_rows)} rows</span>
                )}
              </td>
              <td>{count(t.inserts)}</td>
              <td>{count(t.updates)}</td>
              <td>{count(t.deletes)}</td>
              <td>{ago(t.last_change)}</td>
              {onResync && (
                <td>
                  <button type="button" class="small" onClick={() => onResync(t.table)} title="read this table again while the others stream, then remove the rows the source no longer has">
                    Resync…
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

type Col = { name: string; type?: { kind?: string; name?: string } | string; nullable?: boolean };
type Delta = {
  table?: { columns?: Col[]; primary_key?: string[] };
  changes?: { op: string; column?: Col; old?: Col }[];
};

function typeName(c?: Col): string {
  if (!c?.type) return '';
  return typeof c.type === 'string' ? c.type : (c.type.name ?? c.type.kind ?? '');
}

// Shape shows a proposed change: its steps, then the table as it would be.
function Shape({ value }: { value: unknown }) {
  const d = value as Delta;
  if (!d.table?.columns) return <pre>{JSON.stringify(value, null, 2)}</pre>;
  const changed = new Set((d.changes ?? []).map((c) => c.column?.name));
  return (
    <>
      <ul class="steps">
        {(d.changes ?? []).map((c, i) => (
          <li key={i}>
            {c.op.replace(/_/g, ' ')} {c.old && c.old.name !== c.column?.name ? <code>{c.old.name}</code> : null}
            {c.old && c.old.name !== c.column?.name ? ' → ' : ' '}
            <code>{c.column?.name}</code> {typeName(c.column)}
            {c.old && typeName(c.old) !== typeName(c.column) ? ` (was ${typeName(c.old)})` : ''}
          </li>
        ))}
      </ul>
      <table class="shape">
        <tbody>
          {d.table.columns.map((c) => (
            <tr key={c.name} class={changed.has(c.name) ? 'changed' : undefined}>
              <td>
                {c.name}
                {d.table?.primary_key?.includes(c.name) ? ' (key)' : ''}
              </td>
              <td>{typeName(c)}</td>
              <td>{c.nullable ? 'null' : 'not null'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function SchemaChanges({ name, editor, list }: { name: string; editor: boolean; list: { data: SchemaChange[] | undefined; error: string; reload: () => void } }) {
  const [error, setError] = useState('');
  const decide = async (c: SchemaChange, decision: 'approve' | 'reject' | 'new_column') => {
    setError('');
    try {
      must(
        await api.POST('/api/v1/pipelines/{name}/schema-changes/{table}', {
          params: { path: { name, table: `${c.table.namespace}.${c.table.name}` } },
          body: { decision },
        }),
      );
      list.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const pending = (list.data ?? []).filter((c) => c.status === 'pending');
  if (!pending.length && !list.error) return null;
  return (
    <section aria-labelledby="held-h" class="held">
      <h2 id="held-h">Schema changes waiting for a decision</h2>
      <ErrorText error={list.error} />
      <ErrorText error={error} />
      {pending.map((c) => {
        const table = `${c.table.namespace}.${c.table.name}`;
        return (
          <article key={table} class="card" data-held={table}>
            <h3>{table}</h3>
            <p>{c.reason}</p>
            <p class="muted">
              Held since {when(c.created_at)}; {count(c.held_changes)} changes wait behind it.
            </p>
            <div class="two">
              <div>
                <h4>The change, and the table after it</h4>
                <Shape value={c.proposed} />
              </div>
              <div>
                <h4>What runs at the destination</h4>
                {c.ddl?.length ? <pre class="ddl">{c.ddl.join(';\n') + ';'}</pre> : <p class="muted">No DDL: only the rows change.</p>}
              </div>
            </div>
            {editor && (
              <div class="actions">
                <button type="button" class="primary" onClick={() => void decide(c, 'approve')}>
                  Approve
                </button>
                {c.reason.includes('renamed') && (
                  <button type="button" onClick={() => void decide(c, 'new_column')}>
                    Keep both: add as a new column
                  </button>
                )}
                <button type="button" class="danger" onClick={() => void decide(c, 'reject')}>
                  Reject: stop replicating the table
                </button>
              </div>
            )}
          </article>
        );
      })}
    </section>
  );
}

type VerifyTable = components['schemas']['VerifyTable'];

function keys(ks: string[][] | undefined): string {
  return (ks ?? []).map((k) => k.join(',')).join(' ');
}

// Verification: the last verify report, and for editors a verify (and a
// repair of what it found) on demand.
function Verification({ name, editor }: { name: string; editor: boolean }) {
  const last = usePoll(async () => must(await api.GET('/api/v1/pipelines/{name}/verifications', { params: { path: { name }, query: { limit: 1 } } })).verifications[0], 15000, [name]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = async (repair: boolean, tables?: string[]) => {
    setBusy(true);
    setError('');
    try {
      must(await api.POST('/api/v1/pipelines/{name}/verify', { params: { path: { name } }, body: tables ? { repair, tables } : { repair } }));
      last.reload();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const rep = last.data;
  const differ = (rep?.tables ?? []).filter((t: VerifyTable) => t.status === 'different').map((t: VerifyTable) => t.table);
  return (
    <section aria-labelledby="verify-h" data-testid="verification">
      <div class="titlebar">
        <h2 id="verify-h">Verification</h2>
        <span class="grow" />
        {editor && (
          <div class="actions">
            <button type="button" disabled={busy} onClick={() => void run(false)} title="compare every table with the source inside both databases">
              {busy ? 'Verifying…' : 'Verify now'}
            </button>
            {differ.length > 0 && !rep?.repair && (
              <button type="button" class="primary" disabled={busy} onClick={() => void run(true, differ)} title="resync the tables that differ">
                Repair {differ.length === 1 ? differ[0] : `${differ.length} tables`}
              </button>
            )}
          </div>
        )}
      </div>
      <ErrorText error={error} />
      {!rep ? (
        <p class="muted">Not verified yet.</p>
      ) : (
        <>
          <p data-testid="verify-summary">
            {rep.equal ? 'Every compared table equals the source' : 'The replica differs from the source'} ({when(rep.started_at)}
            {rep.scheduled ? ', scheduled' : ''}; {rep.seconds.toFixed(1)} s
            {rep.source_bytes >= 0 ? `, ${bytes(rep.source_bytes)} with the source and ${bytes(rep.destination_bytes)} with the destination` : ''}).
            {rep.repair ? ` Repair: resyncing ${rep.repair.tables.join(', ')}.` : ''}
          </p>
          <div class="scroll" tabIndex={0} role="region" aria-label="Scrollable verification table">
            <table class="list">
              <thead>
                <tr>
                  <th>Table</th>
                  <th>Result</th>
                  <th>Source rows</th>
                  <th>Destination rows</th>
                  <th>Missing</th>
                  <th>Extra</th>
                  <th>Different</th>
                  <th>Notes</th>
                </tr>
              </thead>
              <tbody>
                {rep.tables.map((t: VerifyTable) => (
                  <tr key={t.table} data-testid={'verify-' + t.table}>
                    <td>{t.table}</td>
                    <td>
                      <span class={'state verify-' + t.status}>{t.status}</span>
                    </td>
                    <td>{count(t.source_rows)}</td>
                    <td>{count(t.destination_rows)}</td>
                    <td title={keys(t.samples?.missing)}>
                      {count(t.missing)}
                    </td>
                    <td title={keys(t.samples?.extra)}>
                      {count(t.extra)}
                    </td>
                    <td title={keys(t.samples?.different)}>
                      {count(t.different)}
                    </td>
                    <td>
                      {[
                        t.samples?.missing?.length ? `missing: ${keys(t.samples.missing)}` : '',
                        t.samples?.extra?.length ? `extra: ${keys(t.samples.extra)}` : '',
                        t.samples?.different?.length ? `different: ${keys(t.samples.different)}` : '',
                        t.note ?? '',
                        t.error ?? '',
                        (t.not_compared ?? []).length ? `not compared: ${(t.not_compared ?? []).join('; ')}` : '',
                      ]
                        .filter(Boolean)
                        .join(' · ')}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}

function Events({ name }: { name: string }) {
  const [events, setEvents] = useState<Event[]>([]);
  const [error, setError] = useState('');
  useEffect(() => {
    const ctl = new AbortController();
    setEvents([]);
    setError('');
    streamEvents(
      `/api/v1/pipelines/${encodeURIComponent(name)}/events/stream`,
      (data) => {
        try {
          const e = JSON.parse(data) as Event;
          setEvents((old) => (old.some((o) => o.seq === e.seq) ? old : [e, ...old].slice(0, 200)));
        } catch {
          // a line that is not an event: ignored
        }
      },
      ctl.signal,
    ).catch((e: unknown) => setError(errorText(e)));
    return () => ctl.abort();
  }, [name]);
  return (
    <section aria-labelledby="events-h">
      <h2 id="events-h">Events</h2>
      <ErrorText error={error} />
      {!events.length ? (
        <p class="empty">No events yet.</p>
      ) : (
        <ol class="events" data-testid="events" tabIndex={0} aria-label="Events, newest first">
          {events.map((e) => (
            <li key={e.seq} class={'level-' + e.level}>
              <time dateTime={e.at}>{when(e.at)}</time> <span class="kind">{e.kind.replace('_', ' ')}</span>
              {e.table && <span class="muted"> {e.table}</span>} {e.message}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function PipelinePage() {
  const { params } = useRoute();
  const name = params.name ?? '';
  const { who } = useSession();
  const editor = can(who, 'editor');
  const loc = useLocation();
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState('');
  // a delete the source or sink could not clean up for: offered again by force
  const [forceOffer, setForceOffer] = useState(false);
  const [forceConfirm, setForceConfirm] = useState(false);
  const [leftovers, setLeftovers] = useState<{ side: string; what: string; sql: string; error: string }[] | null>(null);
  // a resync asked for: the whole pipeline (all) or one table
  const [resync, setResync] = useState<{ all: boolean; table?: string } | null>(null);
  const [resynced, setResynced] = useState('');
  const p = usePoll(async () => must(await api.GET('/api/v1/pipelines/{name}', { params: { path: { name } } })), 2000, [name]);
  // one poll for the approval cards and the held tables of the per-table view
  const changes = usePoll(async () => must(await api.GET('/api/v1/pipelines/{name}/schema-changes', { params: { path: { name } } })).schema_changes, 3000, [name]);
  const pending = (changes.data ?? []).filter((c) => c.status === 'pending').map((c) => `${c.table.namespace}.${c.table.name}`);
  const skipped = usePoll(async () => must(await api.GET('/api/v1/pipelines/{name}/skipped', { params: { path: { name }, query: { limit: 20 } } })).skipped, 10000, [name]);

  const act = async (verb: 'pause' | 'resume') => {
    setError('');
    try {
      must(await api.POST(`/api/v1/pipelines/{name}/${verb}`, { params: { path: { name } } }));
      p.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const startResync = async (r: { all: boolean; table?: string }) => {
    setResync(null);
    setError('');
    setResynced('');
    try {
      const rep = must(await api.POST('/api/v1/pipelines/{name}/resync', { params: { path: { name } }, body: r.all ? {} : { tables: [r.table ?? ''] } }));
      setResynced(rep.reset ? `Resyncing the whole pipeline: ${rep.tables.join(', ')}.` : `Resyncing ${rep.tables.join(', ')} while the other tables stream.`);
      p.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const remove = async (force: boolean) => {
    setConfirm(false);
    setForceConfirm(false);
    setError('');
    try {
      if (force) {
        const r = must(await api.DELETE('/api/v1/pipelines/{name}', { params: { path: { name }, query: { force: true } } }));
        if (r && r.leftovers.length > 0) {
          setLeftovers(r.leftovers);
          return;
        }
      } else {
        must(await api.DELETE('/api/v1/pipelines/{name}', { params: { path: { name } } }));
      }
      loc.route('/');
    } catch (e) {
      setError(errorText(e));
      if (!force) setForceOffer(true);
    }
  };

  if (leftovers) {
    return (
      <section data-testid="leftovers">
        <h1>{name} deleted</h1>
        <p class="error">Left behind: the cleanup failed, so remove these by hand.</p>
        {leftovers.map((l, i) => (
          <div key={i} class="card">
            <h2>
              {l.side}: {l.what}
            </h2>
            <p>cleanup failed: {l.error}</p>
            <pre>
              <code>{l.sql}</code>
            </pre>
          </div>
        ))}
        <p>
          <a href="/">← Pipelines</a>
        </p>
      </section>
    );
  }

  if (!p.data) {
    return (
      <section>
        <h1>{name}</h1>
        {p.error ? <ErrorText error={p.error} /> : <p class="loading">Loading…</p>}
      </section>
    );
  }
  const v = p.data;
  const prog = v.status?.progress;
  const held = (prog?.held_tables?.length ?? 0) > 0 || pending.length > 0;
  const why = reason(v);
  return (
    <section>
      <p>
        <a href="/">← Pipelines</a>
      </p>
      <div class="titlebar">
        <h1>{v.name}</h1>
        <StateBadge state={held && v.state === 'streaming' ? 'held' : v.state} degraded={v.status?.degraded} />
        <span class="grow" />
        {editor && (
          <div class="actions">
            {v.paused ? (
              <button type="button" onClick={() => void act('resume')}>
                Resume
              </button>
            ) : (
              <>
                {(v.state === 'failed' || v.state === 'retrying') && (
                  <button type="button" onClick={() => void act('resume')} title="start an attempt now, with a fresh failure count">
                    Retry now
                  </button>
                )}
                <button type="button" onClick={() => void act('pause')}>
                  Pause
                </button>
              </>
            )}
            <a class="button" href={'/pipelines/' + encodeURIComponent(v.name) + '/edit'}>
              Edit
            </a>
            <button type="button" class={v.state === 'needs_resync' ? 'primary' : ''} onClick={() => setResync({ all: true })}>
              Resync…
            </button>
            <button type="button" class="danger" onClick={() => setConfirm(true)}>
              Delete…
            </button>
          </div>
        )}
      </div>
      {why && <p class="reason">{why}</p>}
      {editor && forceOffer && (
        <p class="error">
          Not deleted: the source or destination did not answer.{' '}
          <button type="button" class="danger" onClick={() => setForceConfirm(true)}>
            Delete anyway…
          </button>
        </p>
      )}
      <ErrorText error={p.error} />
      <ErrorText error={error} />
      {resynced && (
        <p class="notice" data-testid="resynced">
          {resynced} The events below say when each table is done.
        </p>
      )}
      {v.notice && <p class="notice">{v.notice}</p>}
      <dl class="facts">
        <div>
          <dt>Lag</dt>
          <dd data-testid="lag">{seconds(prog?.lag_seconds)}</dd>
        </div>
        <div>
          <dt>Behind (source log)</dt>
          <dd>{bytes(prog?.lag_bytes)}</dd>
        </div>
        <div>
          <dt>Changes read</dt>
          <dd>{count(prog?.changes_read)}</dd>
        </div>
        <div>
          <dt>Changes written</dt>
          <dd data-testid="written">{count(prog?.changes_written)}</dd>
        </div>
        <div>
          <dt>Last source commit</dt>
          <dd>{ago(prog?.last_source_commit)}</dd>
        </div>
        <div>
          <dt>Caught up</dt>
          <dd>{prog?.caught_up ? 'yes' : 'no'}</dd>
        </div>
      </dl>
      {v.status?.progress.source?.warnings?.length ? (
        <ul class="warnings">
          {v.status.progress.source.warnings.map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
      ) : null}
      <SchemaChanges name={name} editor={editor} list={changes} />
      <section aria-labelledby="tables-h">
        <h2 id="tables-h">Tables</h2>
        <Tables tables={prog?.tables ?? []} held={new Set([...(prog?.held_tables ?? []), ...pending])} onResync={editor ? (table) => setResync({ all: false, table }) : undefined} />
      </section>
      <Verification name={name} editor={editor} />
      <Charts name={name} />
      <Events name={name} />
      {skipped.data?.length ? (
        <section aria-labelledby="skipped-h">
          <h2 id="skipped-h">Skipped rows</h2>
          <table class="list">
            <thead>
              <tr>
                <th>At</th>
                <th>Table</th>
                <th>Transform</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              {skipped.data.map((s, i) => (
                <tr key={i}>
                  <td>{when(s.at)}</td>
                  <td>
                    {s.table.namespace}.{s.table.name}
                  </td>
                  <td>{s.transform}</td>
                  <td>{s.error}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}
      {editor && (
      <Confirm open={forceConfirm} title={`Delete pipeline ${v.name} anyway?`} confirm="Delete anyway" onConfirm={() => void remove(true)} onCancel={() => setForceConfirm(false)}>
        <p>
          The pipeline is deleted without dropping what its source or sink keeps on a server that does not answer. The next page lists what is left and the
          statements that remove it: a replication slot left behind retains WAL at the source until it is dropped.
        </p>
      </Confirm>
      )}
      {editor && (
      <Confirm
        open={resync !== null}
        title={resync?.all ? `Resync pipeline ${v.name}?` : `Resync table ${resync?.table ?? ''}?`}
        confirm="Resync"
        onConfirm={() => resync && void startResync(resync)}
        onCancel={() => setResync(null)}
      >
        {resync?.all ? (
          <p>
            The pipeline's history is dropped (its offsets, replication slot or binlog position, schema history) and every table is read again while the stream
            goes on. When a table is read, the rows at the destination that the source no longer has are deleted ({'_cdc_deleted'} or removed, per the sink's
            delete mode). This recovers a pipeline that needs a resync. The destination keeps its rows meanwhile.
          </p>
        ) : (
          <p>
            The table is read again while the other tables keep streaming. When it is read, the rows at its destination that the source no longer has are
            deleted. Its held schema change and held rows, if any, are dropped: the read replaces them.
          </p>
        )}
      </Confirm>
      )}
      {editor && (
      <Confirm open={confirm} title={`Delete pipeline ${v.name}?`} confirm="Delete" onConfirm={() => void remove(false)} onCancel={() => setConfirm(false)}>
        <p>
          The pipeline stops and its offsets are removed. Its replication slot and publication (Postgres) are dropped at the source so that they stop retaining
          log, unless its source sets <code>keep_slot_on_delete: true</code>. The destination tables stay as they are.
        </p>
      </Confirm>
      )}
    </section>
  );
}
