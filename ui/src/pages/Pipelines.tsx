import { memo } from 'preact/compat';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, errorText, must, streamEvents, type Pipeline } from '../api';
import { ErrorText, Sparkline, StateBadge, usePoll } from '../components';
import { count, rate, seconds } from '../format';
import { can, useSession } from '../session';

// snapshot sums the snapshotting tables' rows done and estimated (null when
// a table has no estimate: no percentage is made up then).
export function snapshot(p: Pipeline): { done: number; estimated: number | null } | null {
  const tables = (p.status?.progress.tables ?? []).filter((t) => t.state === 'snapshotting');
  if (!tables.length) return null;
  let done = 0;
  let est: number | null = 0;
  for (const t of tables) {
    done += t.rows_done;
    est = t.rows_estimated === null || est === null ? null : est + t.rows_estimated;
  }
  return { done, estimated: est };
}

// reason says why a pipeline is in its state, in one line.
export function reason(p: Pipeline): string {
  const st = p.status;
  if (p.paused) return 'paused by a person';
  if (st?.progress.held_tables?.length) return 'schema change held: ' + st.progress.held_tables.join(', ');
  if (st?.degraded && st.reasons?.length) return st.reasons.join('; ');
  if (p.state === 'failed' || p.state === 'needs_resync') return p.last_error ?? '';
  if (st?.next_retry) return `retrying (attempt ${st.failed_attempts}): ${st.last_error ?? ''}`;
  return '';
}

const history = 30;

export function Pipelines() {
  const { who } = useSession();
  const editor = can(who, 'editor');
  const [filter, setFilter] = useState('');
  const [state, setState] = useState('');
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [busy, setBusy] = useState('');
  const [actionError, setActionError] = useState('');
  // throughput per pipeline from successive polls: one request for the list
  const rates = useRef(new Map<string, { at: number; written: number; values: number[] }>());
  const list = usePoll(async () => {
    const d = must(await api.GET('/api/v1/pipelines'));
    const now = Date.now();
    for (const p of d.pipelines) {
      const w = p.status?.progress.changes_written ?? 0;
      const r = rates.current.get(p.name);
      if (!r) {
        rates.current.set(p.name, { at: now, written: w, values: [] });
        continue;
      }
      const dt = (now - r.at) / 1000;
      if (dt > 0) r.values = [...r.values, Math.max(0, (w - r.written) / dt)].slice(-history);
      r.at = now;
      r.written = w;
    }
    return d.pipelines;
  }, 2000);

  const firing = usePoll(async () => must(await api.GET('/api/v1/alerts/active')).alerts.filter((a) => a.state === 'firing'), 5000);
  // a pipeline's state changes show at once: every event reloads the list
  // (counters and lag come with the poll)
  const reload = useRef(list.reload);
  reload.current = list.reload;
  useEffect(() => {
    const ctl = new AbortController();
    let timer: number | undefined;
    streamEvents(
      '/api/v1/events/stream',
      () => {
        window.clearTimeout(timer);
        timer = window.setTimeout(() => reload.current(), 200);
      },
      ctl.signal,
    ).catch(() => undefined); // the poll goes on
    return () => {
      window.clearTimeout(timer);
      ctl.abort();
    };
  }, []);
  const pipelines = (list.data ?? []).filter(
    (p) => (!filter || p.name.includes(filter.toLowerCase())) && (!state || p.state === state || (state === 'held' && (p.status?.progress.held_tables?.length ?? 0) > 0)),
  );

  const act = async (names: string[], verb: 'pause' | 'resume') => {
    setBusy(verb);
    setActionError('');
    const failed: string[] = [];
    for (const name of names) {
      try {
        must(await api.POST(`/api/v1/pipelines/{name}/${verb}`, { params: { path: { name } } }));
      } catch (e) {
        failed.push(`${name}: ${errorText(e)}`);
      }
    }
    setBusy('');
    setActionError(failed.join('\n'));
    setSelected(new Set());
    list.reload();
  };

  // functional: a row not rendered again since holds an older closure
  const toggle = (name: string) =>
    setSelected((old) => {
      const s = new Set(old);
      if (s.has(name)) s.delete(name);
      else s.add(name);
      return s;
    });

  return (
    <section>
      <div class="titlebar">
        <h1>Pipelines</h1>
        <span class="grow" />
        {editor && (
          <a class="button primary" href="/pipelines/new">
            New pipeline
          </a>
        )}
      </div>
      <div class="toolbar">
        <label>
          Search <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="name" />
        </label>
        <label>
          State{' '}
          <select value={state} onChange={(e) => setState(e.currentTarget.value)}>
            <option value="">all</option>
            {['snapshotting', 'streaming', 'retrying', 'held', 'paused', 'failed', 'needs_resync', 'created'].map((s) => (
              <option key={s} value={s}>
                {s.replace('_', ' ')}
              </option>
            ))}
          </select>
        </label>
        {editor && (
          <>
            <button type="button" disabled={!selected.size || !!busy} onClick={() => void act([...selected], 'pause')}>
              Pause selected
            </button>
            <button type="button" disabled={!selected.size || !!busy} onClick={() => void act([...selected], 'resume')}>
              Resume selected
            </button>
          </>
        )}
      </div>
      <ErrorText error={list.error} />
      <ErrorText error={actionError} />
      {(firing.data?.length ?? 0) > 0 && (
        <p class="banner" role="alert" data-testid="firing">
          {firing.data?.length} alert{firing.data?.length === 1 ? '' : 's'} firing: {firing.data?.map((a) => `${a.rule} on ${a.pipeline}`).join(', ')}. <a href="/alerts">See alerts</a>
        </p>
      )}
      {list.data === undefined && !list.error ? (
        <p class="loading">Loading pipelines…</p>
      ) : (list.data ?? []).length === 0 ? (
        <p class="empty">
          No pipelines yet. {editor && <a href="/pipelines/new">Create one</a>}
          {editor ? ' here, or' : ' Create one'} with <code>cdcd pipelines apply -f pipeline.yaml</code>; first add its <a href="/connections">connections</a>.
        </p>
      ) : (
        <div class="scroll" tabIndex={0} role="region" aria-label="Scrollable table">
          <table class="list">
            <thead>
              <tr>
                {editor && (
                  <th>
                    <input
                      type="checkbox"
                      aria-label="Select all shown"
                      checked={pipelines.length > 0 && pipelines.every((p) => selected.has(p.name))}
                      onChange={(e) => setSelected(e.currentTarget.checked ? new Set(pipelines.map((p) => p.name)) : new Set())}
                    />
                  </th>
                )}
                <th>Pipeline</th>
                <th>State</th>
                <th>Lag</th>
                <th>Written</th>
                <th>Throughput</th>
                <th>Snapshot</th>
                {editor && <th>Actions</th>}
              </tr>
            </thead>
            <tbody>
              {pipelines.map((p) => {
                const r = rates.current.get(p.name)?.values ?? [];
                const view = rowView(p, r);
                return (
                  <Row
                    key={p.name}
                    p={p}
                    view={view}
                    sig={view.sig + (selected.has(p.name) ? '|s' : '') + (busy ? '|b' : '')}
                    editor={editor}
                    selected={selected.has(p.name)}
                    busy={!!busy}
                    toggle={toggle}
                    act={act}
                  />
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

type RowView = { snap: ReturnType<typeof snapshot>; rates: number[]; why: string; held: boolean; sig: string };

// rowView derives what a row shows, and a signature of it: a row whose
// signature is unchanged is not rendered again (a poll of 200 pipelines
// then costs only the rows that moved).
function rowView(p: Pipeline, rates: number[]): RowView {
  const snap = snapshot(p);
  const why = reason(p);
  const held = (p.status?.progress.held_tables?.length ?? 0) > 0;
  const prog = p.status?.progress;
  const sig = [p.state, p.paused, p.status?.degraded, why, held, prog?.lag_seconds, prog?.changes_written, snap?.done, snap?.estimated, rates.join(',')].join('|');
  return { snap, rates, why, held, sig };
}

type RowProps = {
  p: Pipeline;
  view: RowView;
  sig: string;
  editor: boolean;
  selected: boolean;
  busy: boolean;
  toggle: (name: string) => void;
  act: (names: string[], verb: 'pause' | 'resume') => Promise<void>;
};

const Row = memo(
  function Row({ p, view, editor, selected, busy, toggle, act }: RowProps) {
    const { snap, rates: r, why, held } = view;
    return (
      <tr data-pipeline={p.name}>
        {editor && (
          <td>
            <input type="checkbox" aria-label={'Select ' + p.name} checked={selected} onChange={() => toggle(p.name)} />
          </td>
        )}
        <td>
          <a href={'/pipelines/' + encodeURIComponent(p.name)}>{p.name}</a>
        </td>
        <td>
          <StateBadge state={held && p.state === 'streaming' ? 'held' : p.state} degraded={p.status?.degraded} />
          {why && <div class="reason">{why}</div>}
        </td>
        <td>{seconds(p.status?.progress.lag_seconds)}</td>
        <td>{count(p.status?.progress.changes_written)}</td>
        <td>
          <Sparkline values={r} label={`${p.name}: ${rate(r[r.length - 1] ?? 0)} written`} /> <span class="muted">{rate(r[r.length - 1] ?? 0)}</span>
        </td>
        <td>
          {snap === null ? (
            '–'
          ) : snap.estimated === null ? (
            <span>{count(snap.done)} rows (no estimate)</span>
          ) : snap.done >= snap.estimated ? (
            <span>
              {count(snap.done)} rows, past the estimate of {count(snap.estimated)}
            </span>
          ) : (
            <span>
              <progress max={snap.estimated || 1} value={snap.done} /> {Math.floor((100 * snap.done) / Math.max(snap.estimated, 1))}%
            </span>
          )}
        </td>
        {editor && (
          <td>
            {p.paused ? (
              <button type="button" disabled={busy} onClick={() => void act([p.name], 'resume')}>
                Resume
              </button>
            ) : (
              <button type="button" disabled={busy} onClick={() => void act([p.name], 'pause')}>
                Pause
              </button>
            )}
          </td>
        )}
      </tr>
    );
  },
  (a, b) => a.sig === b.sig && a.editor === b.editor,
);
