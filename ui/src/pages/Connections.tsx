import { useEffect, useMemo, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { api, ApiError, errorText, must, type CheckResult, type Field, type Problem, type Schemas, type Types } from '../api';
import { ErrorText, FieldProblems, usePoll } from '../components';
import { when } from '../format';
import { can, useSession } from '../session';

const redacted = '******';

export function Connections() {
  const { who } = useSession();
  const list = usePoll(async () => must(await api.GET('/api/v1/connections')).connections, 5000);
  return (
    <section>
      <div class="titlebar">
        <h1>Connections</h1>
        <span class="grow" />
        {can(who, 'editor') && (
          <a class="button primary" href="/connections/new">
            New connection
          </a>
        )}
      </div>
      <p class="muted">Sources, destinations and alert channels, named once and used by pipelines. Secrets are encrypted at rest and never shown back.</p>
      <ErrorText error={list.error} />
      {list.data === undefined && !list.error ? (
        <p class="loading">Loading connections…</p>
      ) : !list.data?.length ? (
        <p class="empty">No connections yet.</p>
      ) : (
        <table class="list">
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((c) => (
              <tr key={c.name} data-connection={c.name}>
                <td>
                  <a href={'/connections/' + encodeURIComponent(c.name)}>{c.name}</a>
                </td>
                <td>{c.type}</td>
                <td>{when(c.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

type Values = Record<string, string | boolean>;

// toValues turns a stored config into form values (lists and maps as lines).
function toValues(fields: Field[], config: Record<string, unknown>): Values {
  const out: Values = {};
  for (const f of fields) {
    const v = config[f.key];
    if (v === undefined || v === null) continue;
    switch (f.kind) {
      case 'boolean':
        out[f.key] = v === true;
        break;
      case 'list':
        out[f.key] = Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('\n') : String(v);
        break;
      case 'map':
        out[f.key] = Object.entries(v as Record<string, unknown>)
          .map(([k, x]) => `${k}: ${String(x)}`)
          .join('\n');
        break;
      case 'object':
        out[f.key] = JSON.stringify(v, null, 2);
        break;
      default:
        out[f.key] = String(v);
    }
  }
  return out;
}

// toConfig turns form values into a config: only keys set (the server
// applies the defaults), kinds as the spec says. Problems it can tell
// locally are returned with their paths.
function toConfig(fields: Field[], values: Values): { config: Record<string, unknown>; problems: Problem[] } {
  const config: Record<string, unknown> = {};
  const problems: Problem[] = [];
  for (const f of fields) {
    const v = values[f.key];
    if (v === undefined || v === '') continue;
    const path = 'config.' + f.key;
    switch (f.kind) {
      case 'boolean':
        if (v !== (f.default === true)) config[f.key] = v === true;
        break;
      case 'integer':
      case 'number': {
        const n = Number(v);
        if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) problems.push({ path, message: `must be ${f.kind === 'integer' ? 'a whole number' : 'a number'}` });
        else config[f.key] = n;
        break;
      }
      case 'list': {
        const items = String(v)
          .split('\n')
          .map((s) => s.trim())
          .filter(Boolean);
        if (f.items && f.items !== 'string') {
          try {
            config[f.key] = items.map((s) => JSON.parse(s) as unknown);
          } catch {
            problems.push({ path, message: 'each line must be a JSON value' });
          }
        } else config[f.key] = items;
        break;
      }
      case 'map': {
        const m: Record<string, string> = {};
        for (const line of String(v).split('\n')) {
          if (!line.trim()) continue;
          const at = line.indexOf(':');
          if (at < 1) problems.push({ path, message: `"${line}" is not "key: value"` });
          else m[line.slice(0, at).trim()] = line.slice(at + 1).trim();
        }
        config[f.key] = m;
        break;
      }
      case 'object':
        try {
          config[f.key] = JSON.parse(String(v)) as unknown;
        } catch {
          problems.push({ path, message: 'must be JSON' });
        }
        break;
      default:
        config[f.key] = String(v);
    }
  }
  return { config, problems };
}

function FieldInput({ f, value, stored, onChange, problems }: { f: Field; value: string | boolean | undefined; stored: boolean; onChange: (v: string | boolean) => void; problems: Problem[] }) {
  const id = 'f-' + f.key;
  const label = f.key.replace(/_/g, ' ');
  const placeholder = f.default !== undefined && f.default !== null ? `default: ${typeof f.default === 'object' ? JSON.stringify(f.default) : String(f.default)}` : '';
  let input;
  if (f.kind === 'boolean') {
    input = <input id={id} type="checkbox" checked={value === undefined ? f.default === true : value === true} onChange={(e) => onChange(e.currentTarget.checked)} />;
  } else if (f.kind === 'list' || f.kind === 'map' || f.kind === 'object') {
    input = (
      <textarea
        id={id}
        rows={f.kind === 'object' ? 6 : 3}
        value={typeof value === 'string' ? value : ''}
        placeholder={f.kind === 'list' ? 'one per line' : f.kind === 'map' ? 'key: value, one per line' : 'JSON'}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  } else if (f.secret) {
    input = (
      <input
        id={id}
        type="password"
        autocomplete="new-password"
        value={typeof value === 'string' && value !== redacted ? value : ''}
        placeholder={stored ? 'stored: type to replace' : 'or ${ENV_NAME} / ${file:/path}'}
        onInput={(e) => onChange(e.currentTarget.value === '' && stored ? redacted : e.currentTarget.value)}
      />
    );
  } else {
    const text = typeof value === 'string' ? value : '';
    input =
      f.kind === 'integer' || f.kind === 'number' ? (
        <input id={id} type="number" step={f.kind === 'number' ? 'any' : '1'} value={text} placeholder={placeholder} onInput={(e) => onChange(e.currentTarget.value)} />
      ) : (
        <input id={id} type="text" value={text} placeholder={placeholder} onInput={(e) => onChange(e.currentTarget.value)} />
      );
  }
  return (
    <div class={'field' + (f.kind === 'boolean' ? ' check' : '')}>
      <label for={id}>
        {label}
        {f.secret && <span class="muted"> (secret)</span>}
      </label>
      {input}
      <FieldProblems problems={problems} path={'config.' + f.key} />
    </div>
  );
}

function Checks({ result }: { result: CheckResult }) {
  return (
    <div class={'check-result ' + (result.ok ? 'ok' : 'failed')} role="status" data-testid="test-result">
      <strong>{result.ok ? 'Connection test passed' : 'Connection test failed'}</strong>
      {result.problems?.length ? (
        <ul>
          {result.problems.map((p) => (
            <li key={p}>
              <pre class="remedy">{p}</pre>
            </li>
          ))}
        </ul>
      ) : null}
      {result.warnings?.length ? (
        <>
          <p>Warnings (the pipeline runs, but read these):</p>
          <ul>
            {result.warnings.map((w) => (
              <li key={w}>
                <pre class="remedy">{w}</pre>
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </div>
  );
}

export function ConnectionEdit() {
  const { params } = useRoute();
  const existing = params.name;
  const loc = useLocation();
  const { who } = useSession();
  const editor = can(who, 'editor');
  const [types, setTypes] = useState<Types | null>(null);
  const [name, setName] = useState(existing ?? '');
  const [type, setType] = useState('');
  const [role, setRole] = useState('');
  const [values, setValues] = useState<Values>({});
  const [stored, setStored] = useState<Record<string, unknown> | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState('');
  const [saved, setSaved] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<CheckResult | null>(null);

  useEffect(() => {
    let live = true;
    void (async () => {
      try {
        const t = must(await api.GET('/api/v1/types'));
        if (!live) return;
        setTypes(t);
        if (existing) {
          const c = must(await api.GET('/api/v1/connections/{name}', { params: { path: { name: existing } } }));
          if (!live) return;
          const ct = t.connections.find((x) => x.type === c.type);
          // the role whose keys the stored config uses
          const fit = ct?.roles.find((r) => Object.keys(c.config).every((k) => r.fields.some((f) => f.key === k))) ?? ct?.roles[0];
          setType(c.type);
          setRole(fit?.role ?? '');
          setStored(c.config);
          setValues(toValues(fit?.fields ?? [], c.config));
        }
      } catch (e) {
        if (live) setError(errorText(e));
      }
    })();
    return () => {
      live = false;
    };
  }, [existing]);

  const ct = types?.connections.find((x) => x.type === type);
  const fields = useMemo(() => ct?.roles.find((r) => r.role === role)?.fields ?? [], [ct, role]);

  const save = async (e: SubmitEvent) => {
    e.preventDefault();
    setError('');
    setSaved('');
    setResult(null);
    const { config, problems: local } = toConfig(fields, values);
    const ps: Problem[] = [...local];
    if (!existing && !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) ps.push({ path: 'name', message: 'lower-case letters, digits, _ and -, starting with a letter or digit, at most 63' });
    if (!type) ps.push({ path: 'type', message: 'choose a type' });
    setProblems(ps);
    if (ps.length) return;
    setBusy(true);
    try {
      if (existing) must(await api.PUT('/api/v1/connections/{name}', { params: { path: { name: existing } }, body: { type, config } }));
      // the generator reads NewConnection's allOf as forbidding name: it is required
      else must(await api.POST('/api/v1/connections', { body: { name, type, config } as unknown as Schemas['NewConnection'] }));
      setSaved('Saved.');
      setProblems([]);
      if (!existing) loc.route('/connections/' + encodeURIComponent(name), true);
    } catch (err) {
      // the API names a connection document's keys under "connection."
      if (err instanceof ApiError && err.problems.length) setProblems(err.problems.map((p) => ({ ...p, path: p.path.replace(/^connection\./, '') })));
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const test = async () => {
    if (!existing) return;
    setResult(null);
    setError('');
    setBusy(true);
    try {
      const asRole = role === 'source' || role === 'destination' || role === 'alert_channel' ? role : undefined;
      setResult(must(await api.POST('/api/v1/connections/{name}/test', { params: { path: { name: existing }, query: { role: asRole } } })));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const [confirmDelete, setConfirmDelete] = useState(false);
  const remove = async () => {
    if (!existing) return;
    try {
      must(await api.DELETE('/api/v1/connections/{name}', { params: { path: { name: existing } } }));
      loc.route('/connections');
    } catch (err) {
      setError(errorText(err));
    }
  };

  const unshown = stored ? Object.keys(stored).filter((k) => !fields.some((f) => f.key === k)) : [];
  return (
    <section>
      <p>
        <a href="/connections">← Connections</a>
      </p>
      <h1>{existing ? `Connection ${existing}` : 'New connection'}</h1>
      <ErrorText error={error} />
      {!types ? (
        <p class="loading">Loading…</p>
      ) : (
        <form class="form" onSubmit={(e) => void save(e)}>
          <fieldset disabled={!editor}>
            <div class="field">
              <label for="f-name">Name</label>
              <input id="f-name" value={name} readOnly={!!existing} onInput={(e) => setName(e.currentTarget.value)} required />
              <FieldProblems problems={problems} path="name" />
            </div>
            <div class="field">
              <label for="f-type">Type</label>
              <select
                id="f-type"
                value={type}
                disabled={!!existing}
                onChange={(e) => {
                  const t = e.currentTarget.value;
                  setType(t);
                  setRole(types.connections.find((x) => x.type === t)?.roles[0]?.role ?? '');
                  setValues({});
                }}
              >
                <option value="">choose…</option>
                {types.connections.map((c) => (
                  <option key={c.type} value={c.type}>
                    {c.type} ({c.roles.map((r) => (r.role ?? '').replace('_', ' ')).join(', ')})
                  </option>
                ))}
              </select>
              <FieldProblems problems={problems} path="type" />
            </div>
            {ct && ct.roles.length > 1 && (
              <div class="field">
                <label for="f-role">Used as</label>
                <select id="f-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
                  {ct.roles.map((r) => (
                    <option key={r.role} value={r.role}>
                      {(r.role ?? '').replace('_', ' ')}
                    </option>
                  ))}
                </select>
              </div>
            )}
            {fields.map((f) => (
              <FieldInput
                key={type + role + f.key}
                f={f}
                value={values[f.key]}
                stored={!!stored && stored[f.key] !== undefined}
                problems={problems}
                onChange={(v) => setValues({ ...values, [f.key]: v })}
              />
            ))}
            {unshown.length > 0 && <p class="notice">This connection also sets {unshown.join(', ')}, which the {role} form does not show; saving here drops them.</p>}
            {(() => {
              const other = problems.filter((p) => p.path !== 'name' && p.path !== 'type' && !fields.some((f) => p.path === 'config.' + f.key || p.path.startsWith('config.' + f.key + '.') || p.path.startsWith('config.' + f.key + '[')));
              return other.length ? (
                <ul class="field-problems" role="alert">
                  {other.map((p) => (
                    <li key={p.path + p.message}>
                      <code>{p.path || '(document)'}</code> {p.message}
                    </li>
                  ))}
                </ul>
              ) : null;
            })()}
          </fieldset>
          {editor && (
            <div class="actions">
              <button type="submit" class="primary" disabled={busy}>
                Save
              </button>
              {existing && (
                <button type="button" disabled={busy} onClick={() => void test()}>
                  Test
                </button>
              )}
              {existing && (
                <button type="button" class="danger" disabled={busy} onClick={() => setConfirmDelete(true)}>
                  Delete
                </button>
              )}
              {busy && <span class="muted">Working…</span>}
              {saved && <span role="status">{saved}</span>}
            </div>
          )}
        </form>
      )}
      {result && <Checks result={result} />}
      {confirmDelete && (
        <div class="card" role="alertdialog" aria-labelledby="del-h">
          <h2 id="del-h">Delete connection {existing}?</h2>
          <p>Pipelines that use it must be deleted or changed first; the server refuses otherwise.</p>
          <div class="actions">
            <button type="button" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
            <button type="button" class="danger" onClick={() => void remove()}>
              Delete
            </button>
          </div>
        </div>
      )}
    </section>
  );
}
