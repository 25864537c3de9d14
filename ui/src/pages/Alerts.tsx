import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, errorText, must, type Problem, type Schemas } from '../api';
import { ErrorText, usePoll } from '../components';
import { when } from '../format';
import { can, useSession } from '../session';

type Rule = NonNullable<Schemas['Alerts']['rules']>[number];

const conditions: { value: Rule['condition']; label: string; threshold?: string; initial?: number }[] = [
  { value: 'lag_seconds', label: 'lag over a number of seconds', threshold: 'seconds', initial: 60 },
  { value: 'retained_wal_bytes', label: 'retained source log over a size', threshold: 'bytes', initial: 10 * 1024 ** 3 },
  { value: 'wal_status', label: "the slot's wal_status is not reserved" },
  { value: 'not_advancing', label: 'the position does not advance' },
  { value: 'pipeline_failed', label: 'the pipeline failed or needs a resync' },
  { value: 'schema_change_held', label: 'a schema change waits for a decision' },
  { value: 'retrying', label: 'the pipeline keeps retrying' },
  { value: 'verify_mismatch', label: 'verify found rows that differ from the source', threshold: 'rows allowed to differ', initial: 0 },
];

function newRule(channel: string): Rule {
  return { name: '', condition: 'lag_seconds', threshold: 60, for: '5m', channels: channel ? [channel] : [], severity: 'warning' };
}

// Alerts shows what fires now and what was sent, and edits the rules (an
// editor): each rule a condition, how long it must hold, the pipelines it
// watches (all when none) and the channels it notifies.
export function Alerts() {
  const { who } = useSession();
  const editor = can(who, 'editor');
  const active = usePoll(async () => must(await api.GET('/api/v1/alerts/active')).alerts, 5000);
  const history = usePoll(async () => must(await api.GET('/api/v1/alerts/history', { params: { query: { limit: 50 } } })).history, 10000);
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [interval, setInterval] = useState<string | undefined>(undefined);
  const [channels, setChannels] = useState<string[]>([]);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState('');
  const [saved, setSaved] = useState('');
  const [tested, setTested] = useState<Record<string, string>>({});

  useEffect(() => {
    void (async () => {
      try {
        const [a, cs, ts] = await Promise.all([api.GET('/api/v1/alerts'), api.GET('/api/v1/connections'), api.GET('/api/v1/types')]);
        const alerts = must(a);
        setRules(alerts.rules ?? []);
        setInterval(alerts.evaluation_interval);
        const kinds = new Set(must(ts).connections.filter((c) => c.roles.some((r) => r.role === 'alert_channel')).map((c) => c.type));
        setChannels(must(cs).connections.filter((c) => kinds.has(c.type)).map((c) => c.name));
      } catch (e) {
        setError(errorText(e));
      }
    })();
  }, []);

  const save = async () => {
    if (!rules) return;
    setError('');
    setSaved('');
    try {
      const body: Schemas['Alerts'] = { rules: rules.map((r) => ({ ...r, pipelines: r.pipelines?.length ? r.pipelines : undefined })) };
      if (interval) body.evaluation_interval = interval;
      const res = must(await api.PUT('/api/v1/alerts', { body }));
      setRules(res.rules ?? []);
      setProblems([]);
      setSaved('Saved: the rules are in force.');
    } catch (e) {
      if (e instanceof ApiError) setProblems(e.problems);
      setError(errorText(e));
    }
  };
  const test = async (name: string) => {
    setTested({ ...tested, [name]: 'sending…' });
    try {
      const r = must(await api.POST('/api/v1/connections/{name}/test', { params: { path: { name }, query: { role: 'alert_channel' } } }));
      setTested((t) => ({ ...t, [name]: r.ok ? 'test notification sent' : 'failed: ' + (r.problems ?? []).join('; ') }));
    } catch (e) {
      setTested((t) => ({ ...t, [name]: 'failed: ' + errorText(e) }));
    }
  };
  const set = (i: number, r: Partial<Rule>) => rules && setRules(rules.map((x, j) => (j === i ? { ...x, ...r } : x)));
  // the API names a rule by its name, or its index when it has none
  const problemsAt = (i: number) => problems.filter((p) => p.path.includes(`rules[${i}]`) || (!!rules?.[i]?.name && p.path.includes(`rules[${rules[i]?.name}]`)));

  return (
    <section>
      <h1>Alerts</h1>
      <ErrorText error={error} />
      <h2>Firing and pending</h2>
      <ErrorText error={active.error} />
      {!active.data?.length ? (
        <p class="empty">Nothing fires.</p>
      ) : (
        <table class="list" data-testid="active-alerts">
          <thead>
            <tr>
              <th>Rule</th>
              <th>Pipeline</th>
              <th>State</th>
              <th>Since</th>
              <th>Summary</th>
            </tr>
          </thead>
          <tbody>
            {active.data.map((a) => (
              <tr key={a.rule + a.pipeline}>
                <td>{a.rule}</td>
                <td>
                  <a href={'/pipelines/' + encodeURIComponent(a.pipeline)}>{a.pipeline}</a>
                </td>
                <td class={a.state === 'firing' ? 'error' : 'notice'}>{a.state}</td>
                <td>{when(a.since)}</td>
                <td>{a.summary}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Rules</h2>
      {!rules ? (
        <p class="loading">Loading…</p>
      ) : (
        <div class="form wide">
          <div class="field">
            <label for="eval-interval">Evaluate the rules every</label>
            <input id="eval-interval" value={interval ?? ''} placeholder="15s" disabled={!editor} onInput={(e) => setInterval(e.currentTarget.value || undefined)} />
          </div>
          {!channels.length && (
            <p class="notice">
              No alert channel yet: <a href="/connections/new">create a connection</a> of type slack, webhook or email.
            </p>
          )}
          {rules.map((r, i) => {
            const cond = conditions.find((c) => c.value === r.condition);
            return (
              <fieldset key={i} class="card" data-rule={r.name || i}>
                <legend>Rule {r.name || i + 1}</legend>
                <div class="field">
                  <label for={`r${i}-name`}>Name</label>
                  <input id={`r${i}-name`} value={r.name} disabled={!editor} onInput={(e) => set(i, { name: e.currentTarget.value })} />
                </div>
                <div class="field">
                  <label for={`r${i}-cond`}>When</label>
                  <select id={`r${i}-cond`} value={r.condition} disabled={!editor} onChange={(e) => {
                      const c = e.currentTarget.value as Rule['condition'];
                      // a condition without a threshold takes none
                      set(i, { condition: c, threshold: conditions.find((x) => x.value === c)?.initial });
                    }}>
                    {conditions.map((c) => (
                      <option key={c.value} value={c.value}>
                        {c.label}
                      </option>
                    ))}
                  </select>
                </div>
                {cond?.threshold && (
                  <div class="field">
                    <label for={`r${i}-th`}>Threshold ({cond.threshold})</label>
                    <input id={`r${i}-th`} type="number" value={r.threshold ?? ''} disabled={!editor} onInput={(e) => set(i, { threshold: Number(e.currentTarget.value) })} />
                  </div>
                )}
                <div class="field">
                  <label for={`r${i}-for`}>For at least</label>
                  <input id={`r${i}-for`} value={r.for ?? ''} placeholder="e.g. 5m (default: at once)" disabled={!editor} onInput={(e) => set(i, { for: e.currentTarget.value || undefined })} />
                </div>
                <div class="field">
                  <label for={`r${i}-pl`}>Pipelines (comma-separated; none: every pipeline)</label>
                  <input
                    id={`r${i}-pl`}
                    value={(r.pipelines ?? []).join(', ')}
                    disabled={!editor}
                    onInput={(e) =>
                      set(i, {
                        pipelines: e.currentTarget.value
                          .split(',')
                          .map((s) => s.trim())
                          .filter(Boolean),
                      })
                    }
                  />
                </div>
                <div class="field">
                  <span>Notify</span>
                  {channels.map((c) => (
                    <label key={c} class="inline-check">
                      <input
                        type="checkbox"
                        disabled={!editor}
                        checked={r.channels.includes(c)}
                        onChange={(e) => set(i, { channels: e.currentTarget.checked ? [...r.channels, c] : r.channels.filter((x) => x !== c) })}
                      />{' '}
                      {c}
                    </label>
                  ))}
                </div>
                <div class="field">
                  <label for={`r${i}-sev`}>Severity</label>
                  <select id={`r${i}-sev`} value={r.severity ?? 'warning'} disabled={!editor} onChange={(e) => set(i, { severity: e.currentTarget.value as Rule['severity'] })}>
                    <option value="info">info</option>
                    <option value="warning">warning</option>
                    <option value="critical">critical</option>
                  </select>
                </div>
                {problemsAt(i).length > 0 && (
                  <ul class="field-problems" role="alert">
                    {problemsAt(i).map((p) => (
                      <li key={p.path + p.message}>
                        <code>{p.path}</code> {p.message}
                      </li>
                    ))}
                  </ul>
                )}
                {editor && (
                  <button type="button" class="danger" onClick={() => setRules(rules.filter((_, j) => j !== i))}>
                    Remove rule
                  </button>
                )}
              </fieldset>
            );
          })}
          {editor && (
            <div class="actions">
              <button type="button" onClick={() => setRules([...rules, newRule(channels[0] ?? '')])}>
                Add a rule
              </button>
              <button type="button" class="primary" onClick={() => void save()}>
                Save rules
              </button>
              {saved && <span role="status">{saved}</span>}
            </div>
          )}
          {problems.some((p) => !/rules\[/.test(p.path)) && (
            <ul class="field-problems" role="alert">
              {problems
                .filter((p) => !/rules\[/.test(p.path))
                .map((p) => (
                  <li key={p.path + p.message}>
                    <code>{p.path}</code> {p.message}
                  </li>
                ))}
            </ul>
          )}
        </div>
      )}
      <h2>Channels</h2>
      {!channels.length ? (
        <p class="empty">No channel.</p>
      ) : (
        <ul class="channels">
          {channels.map((c) => (
            <li key={c} data-channel={c}>
              <a href={'/connections/' + encodeURIComponent(c)}>{c}</a>{' '}
              {editor && (
                <button type="button" onClick={() => void test(c)}>
                  Send a test
                </button>
              )}{' '}
              <span role="status">{tested[c] ?? ''}</span>
            </li>
          ))}
        </ul>
      )}
      <h2>Sent</h2>
      <ErrorText error={history.error} />
      {!history.data?.length ? (
        <p class="empty">Nothing sent yet.</p>
      ) : (
        <table class="list" data-testid="alert-history">
          <thead>
            <tr>
              <th>At</th>
              <th>Rule</th>
              <th>Pipeline</th>
              <th>Status</th>
              <th>Channel</th>
              <th>Delivered</th>
            </tr>
          </thead>
          <tbody>
            {history.data.map((h, i) => (
              <tr key={i}>
                <td>{when(h.at)}</td>
                <td>{h.rule}</td>
                <td>{h.pipeline}</td>
                <td>{h.status}</td>
                <td>{h.channel}</td>
                <td>{h.delivered ? `yes (${h.attempts} attempts)` : `no: ${h.error ?? ''}`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
