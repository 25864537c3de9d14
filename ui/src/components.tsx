import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText, type Problem } from './api';

// usePoll calls load now and every ms milliseconds while the component is
// shown, keeping the last data and the last error (cleared on success).
export function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[] = []): { data: T | undefined; error: string; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    const run = async () => {
      try {
        const d = await loadRef.current();
        if (!live) return;
        setData(d);
        setError('');
      } catch (e) {
        if (live) setError(errorText(e));
      }
      if (live) timer = window.setTimeout(run, ms);
    };
    void run();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [ms, tick, ...deps]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export function StateBadge({ state, degraded, title }: { state: string; degraded?: boolean; title?: string }) {
  return (
    <span class={'state state-' + state + (degraded ? ' degraded' : '')} title={title}>
      {state.replace('_', ' ')}
      {degraded ? ' · degraded' : ''}
    </span>
  );
}

export function ErrorText({ error }: { error: string }) {
  if (!error) return null;
  return (
    <p role="alert" class="error">
      {error}
    </p>
  );
}

// FieldProblems lists the problems whose path is path (or under it).
export function FieldProblems({ problems, path }: { problems: Problem[]; path: string }) {
  const mine = problems.filter((p) => p.path === path || p.path.startsWith(path + '.') || p.path.startsWith(path + '['));
  if (!mine.length) return null;
  return (
    <ul class="field-problems" role="alert">
      {mine.map((p) => (
        <li key={p.path + p.message}>
          {p.path !== path && <code>{p.path}</code>} {p.message}
        </li>
      ))}
    </ul>
  );
}

// Sparkline draws values as a small line: a trend, not numbers.
export function Sparkline({ values, label }: { values: number[]; label: string }) {
  const w = 120;
  const h = 28;
  if (values.length < 2) return <span class="muted">–</span>;
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`).join(' ');
  return (
    <svg class="spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label}>
      <polyline points={pts} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

export type Series = { name: string; values: (number | null)[]; cls: string };

// Chart draws series over time (times in ms) with the newest value of each
// in its legend.
export function Chart({ title, times, series, format }: { title: string; times: number[]; series: Series[]; format: (v: number) => string }) {
  const w = 600;
  const h = 160;
  const pad = 4;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(...all, 1e-9);
  const t0 = times[0] ?? 0;
  const t1 = times[times.length - 1] ?? 1;
  const x = (t: number) => pad + ((t - t0) / Math.max(t1 - t0, 1)) * (w - 2 * pad);
  const y = (v: number) => h - pad - (v / max) * (h - 2 * pad);
  return (
    <figure class="chart">
      <figcaption>
        <strong>{title}</strong>
        {series.map((s) => {
          const last = [...s.values].reverse().find((v) => v !== null);
          return (
            <span key={s.name} class={'legend ' + s.cls}>
              {s.name}: {last === undefined || last === null ? '–' : format(last)}
            </span>
          );
        })}
        <span class="muted">max {format(max)}</span>
      </figcaption>
      {times.length < 2 ? (
        <p class="muted">No points yet: they come every 10 seconds.</p>
      ) : (
        <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={title}>
          {series.map((s) => {
            let d = '';
            s.values.forEach((v, i) => {
              if (v === null) return;
              const prev = i > 0 ? s.values[i - 1] : null;
              d += `${prev === null || prev === undefined ? 'M' : 'L'}${x(times[i] ?? t0).toFixed(1)},${y(v).toFixed(1)} `;
            });
            return <path key={s.name} d={d} class={s.cls} fill="none" stroke-width="1.5" vector-effect="non-scaling-stroke" />;
          })}
        </svg>
      )}
    </figure>
  );
}

// Confirm asks before a destructive action, in a modal dialog.
export function Confirm({ open, title, children, confirm, onConfirm, onCancel }: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} onCancel={onCancel} aria-labelledby="confirm-title">
      <h2 id="confirm-title">{title}</h2>
      {children}
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={onConfirm}>
          {confirm}
        </button>
      </div>
    </dialog>
  );
}
