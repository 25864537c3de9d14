import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, errorText, must, type Problem, type Schemas } from '../api';
import { ErrorText, FieldProblems } from '../components';
import { count } from '../format';
import { can, useSession } from '../session';
import { toYAML } from '../yaml';

type CatalogTable = Schemas['CatalogPage']['tables'][number];
type Plan = Schemas['Plan'];
type Preview = Schemas['PreviewResult'];

const maskMethods = ['hash', 'redact', 'partial', 'email', 'tokenize'] as const;
type MaskMethod = (typeof maskMethods)[number];

// Choice is what the user decided for one table.
type Choice = {
  table: CatalogTable;
  exclude: string[];
  mask: Record<string, MaskMethod>;
  rename: Record<string, string>;
  filter: string;
};

const steps = ['Source', 'Tables', 'Columns', 'Transforms', 'Destination', 'Review'] as const;

function tableId(t: CatalogTable): string {
  return `${t.table.namespace}.${t.table.name}`;
}

function randomKey(): string {
  const b = new Uint8Array(24);
  crypto.getRandomValues(b);
  return btoa(String.fromCharCode(...b)).replace(/[+/=]/g, '');
}

type Options = {
  name: string;
  destination: string;
  snapshot: boolean;
  maxWait: string;
  maskKey: string;
  renamePolicy: string;
  dropPolicy: string;
};

// transformsFor turns the choices into the transform chain: filters first
// (on the source's values and names), then masks, then drops and renames.
function transformsFor(choices: Choice[], maskKey: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const c of choices) {
    if (c.filter.trim()) out.push({ type: 'filter', tables: [tableId(c.table)], config: { keep: c.filter.trim() } });
  }
  for (const c of choices) {
    const byMethod = new Map<MaskMethod, string[]>();
    for (const [col, m] of Object.entries(c.mask)) {
      if (c.exclude.includes(col)) continue;
      byMethod.set(m, [...(byMethod.get(m) ?? []), col]);
    }
    for (const [method, columns] of byMethod) {
      const config: Record<string, unknown> = { columns, method };
      if (method === 'hash' || method === 'tokenize') config.key = maskKey;
      out.push({ type: 'mask', tables: [tableId(c.table)], config });
    }
  }
  for (const c of choices) {
    const rename = Object.fromEntries(Object.entries(c.rename).filter(([col, to]) => to.trim() && to.trim() !== col && !c.exclude.includes(col)));
    const config: Record<string, unknown> = {};
    if (c.exclude.length) config.drop = c.exclude;
    if (Object.keys(rename).length) config.rename = rename;
    if (Object.keys(config).length) out.push({ type: 'columns', tables: [tableId(c.table)], config });
  }
  return out;
}

function documentFor(source: string, fixed: boolean, choices: Choice[], o: Options): Record<string, unknown> {
  const config: Record<string, unknown> = { ...(fixed ? {} : { tables: choices.map((c) => tableId(c.table)) }), ...(o.snapshot ? {} : { snapshot: 'never' }) };
  const doc: Record<string, unknown> = {
    name: o.name,
    source: Object.keys(config).length ? { connection: source, config } : { connection: source },
    sink: { connection: o.destination },
  };
  const tr = transformsFor(choices, o.maskKey);
  if (tr.length) doc.transforms = tr;
  if (o.maxWait) doc.batch = { max_wait: o.maxWait };
  doc.schema_changes = { rename_column: o.renamePolicy, drop_column: o.dropPolicy };
  return doc;
}

function SourceStep({ connections, value, onChange }: { connections: Schemas['ConnectionView'][]; value: string; onChange: (v: string) => void }) {
  if (!connections.length)
    return (
      <p class="empty">
        No source connection yet: <a href="/connections/new">create one</a> (Postgres or MySQL/MariaDB).
      </p>
    );
  return (
    <fieldset class="choices">
      <legend>Read changes from</legend>
      {connections.map((c) => (
        <label key={c.name} class="choice">
          <input type="radio" name="source" value={c.name} checked={value === c.name} onChange={() => onChange(c.name)} />
          <strong>{c.name}</strong> <span class="muted">{c.type}</span>
        </label>
      ))}
    </fieldset>
  );
}

function TablesStep({ source, fixed, selected, onToggle, onSelectMany }: {
  source: string;
  fixed: string[];
  selected: Map<string, Choice>;
  onToggle: (t: CatalogTable) => void;
  onSelectMany: (ts: CatalogTable[]) => void;
}) {
  const [search, setSearch] = useState('');
  const [schema, setSchema] = useState('');
  const [tables, setTables] = useState<CatalogTable[]>([]);
  const [schemas, setSchemas] = useState<{ name: string; tables: number }[]>([]);
  const [next, setNext] = useState<string | undefined>(undefined);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);
  const seq = useRef(0);

  const load = async (after?: string) => {
    const mine = ++seq.current;
    setLoading(true);
    setError('');
    try {
      const page = must(
        await api.GET('/api/v1/connections/{name}/catalog', {
          params: { path: { name: source }, query: { search: search || undefined, schema: schema || undefined, after, limit: 100 } },
        }),
      );
      if (mine !== seq.current) return;
      setTables((old) => (after ? [...old, ...page.tables] : page.tables));
      if (fixed.length) onSelectMany(page.tables.filter((t) => fixed.includes(tableId(t))));
      if (page.schemas) setSchemas(page.schemas);
      setNext(page.next);
    } catch (e) {
      if (mine === seq.current) setError(errorText(e));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  };
  useEffect(() => {
    const t = window.setTimeout(() => void load(), 250);
    return () => window.clearTimeout(t);
  }, [source, search, schema]);

  const groups = new Map<string, CatalogTable[]>();
  for (const t of tables) groups.set(t.table.namespace, [...(groups.get(t.table.namespace) ?? []), t]);
  return (
    <div>
      <div class="toolbar">
        <label>
          Search <input type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} placeholder="schema.table" />
        </label>
        {schemas.length > 1 && (
          <label>
            Schema{' '}
            <select value={schema} onChange={(e) => setSchema(e.currentTarget.value)}>
              <option value="">all</option>
              {schemas.map((s) => (
                <option key={s.name} value={s.name}>
                  {s.name} ({s.tables})
                </option>
              ))}
            </select>
          </label>
        )}
        <span class="muted">{selected.size} selected</span>
      </div>
      {fixed.length > 0 && (
        <p class="notice">
          Connection {source} names its tables itself ({fixed.join(', ')}): a pipeline over it replicates those. To choose tables here, remove tables from the
          connection.
        </p>
      )}
      <ErrorText error={error} />
      {!tables.length && !loading && !error && <p class="empty">No tables match.</p>}
      {[...groups].map(([ns, ts]) => (
        <details key={ns} open class="schema-group">
          <summary>
            {ns} <span class="muted">({ts.length} shown)</span>
          </summary>
          {!fixed.length && (
            <button type="button" class="link" onClick={() => onSelectMany(ts.filter((t) => !t.problems?.length))}>
              Select all shown in {ns}
            </button>
          )}
          <table class="list" data-testid="catalog">
            <thead>
              <tr>
                <th />
                <th>Table</th>
                <th>Rows (est.)</th>
                <th>Key</th>
                <th>Can replicate</th>
              </tr>
            </thead>
            <tbody>
              {ts.map((t) => {
                const id = tableId(t);
                const bad = (t.problems?.length ?? 0) > 0;
                return (
                  <tr key={id} data-catalog-table={id}>
                    <td>
                      <input type="checkbox" id={'t-' + id} aria-label={'Replicate ' + id} disabled={bad || fixed.length > 0} checked={selected.has(id)} onChange={() => onToggle(t)} />
                    </td>
                    <td>
                      <label for={'t-' + id}>{t.table.name}</label>
                    </td>
                    <td>{t.estimated_rows === null ? 'unknown' : count(t.estimated_rows)}</td>
                    <td>{t.primary_key.length ? t.primary_key.join(', ') : t.replica_identity ? `replica identity ${t.replica_identity}` : '–'}</td>
                    <td>{bad ? <span class="error">{t.problems?.join('; ')}</span> : 'yes'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </details>
      ))}
      {next && (
        <button type="button" disabled={loading} onClick={() => void load(next)}>
          Load more
        </button>
      )}
      {loading && <p class="loading">Reading the catalog…</p>}
    </div>
  );
}

function ColumnsStep({ choices, update, maskKey, setMaskKey }: { choices: Choice[]; update: (id: string, f: (c: Choice) => Choice) => void; maskKey: string; setMaskKey: (k: string) => void }) {
  const needsKey = choices.some((c) => Object.values(c.mask).some((m) => m === 'hash' || m === 'tokenize'));
  return (
    <div>
      {choices.map((c) => {
        const id = tableId(c.table);
        return (
          <section key={id} class="card" data-columns={id}>
            <h3>{id}</h3>
            <table class="list">
              <thead>
                <tr>
                  <th>Replicate</th>
                  <th>Column</th>
                  <th>Type</th>
                  <th>Mask</th>
                  <th>Name at the destination</th>
                </tr>
              </thead>
              <tbody>
                {c.table.columns.map((col) => {
                  const key = c.table.primary_key.includes(col.name);
                  const excluded = c.exclude.includes(col.name);
                  return (
                    <tr key={col.name} data-column={col.name}>
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`Replicate ${id}.${col.name}`}
                          checked={!excluded}
                          disabled={key}
                          title={key ? 'a key column: the destination merges by it' : undefined}
                          onChange={(e) => {
                            const on = e.currentTarget.checked;
                            update(id, (x) => ({ ...x, exclude: on ? x.exclude.filter((n) => n !== col.name) : [...x.exclude, col.name] }));
                          }}
                        />
                      </td>
                      <td>
                        {col.name}
                        {key ? ' (key)' : ''}
                      </td>
                      <td>{col.type}</td>
                      <td>
                        <select
                          aria-label={`Mask ${id}.${col.name}`}
                          disabled={key || excluded}
                          value={c.mask[col.name] ?? ''}
                          onChange={(e) => {
                            const m = e.currentTarget.value as MaskMethod | '';
                            update(id, (x) => {
                              const mask = Object.fromEntries(Object.entries(x.mask).filter(([n]) => n !== col.name)) as Record<string, MaskMethod>;
                              if (m) mask[col.name] = m;
                              return { ...x, mask };
                            });
                          }}
                        >
                          <option value="">none</option>
                          {maskMethods.map((m) => (
                            <option key={m} value={m}>
                              {m}
                            </option>
                          ))}
                        </select>
                      </td>
                      <td>
                        <input
                          aria-label={`Destination name of ${id}.${col.name}`}
                          disabled={excluded}
                          value={c.rename[col.name] ?? ''}
                          placeholder={col.name}
                          onInput={(e) => {
                            const v = e.currentTarget.value;
                            update(id, (x) => ({ ...x, rename: { ...x.rename, [col.name]: v } }));
                          }}
                        />
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </section>
        );
      })}
      {needsKey && (
        <div class="form">
          <div class="field">
          <label for="mask-key">Secret key for hash and tokenize (at least 16 bytes; stored encrypted; the same key gives the same hashes)</label>
          <div class="actions">
            <input id="mask-key" type="password" autocomplete="off" value={maskKey} onInput={(e) => setMaskKey(e.currentTarget.value)} />
            <button type="button" onClick={() => setMaskKey(randomKey())}>
              Generate
            </button>
          </div>
          {maskKey.length > 0 && maskKey.length < 16 && !maskKey.startsWith('${') && <p class="error">The key is {maskKey.length} bytes; it needs at least 16.</p>}
          </div>
        </div>
      )}
    </div>
  );
}

function PreviewTable({ preview }: { preview: Preview }) {
  const rows = preview.rows;
  const before = Object.keys(rows[0]?.before ?? {});
  const out = (preview.output as { columns?: { name: string }[] }).columns?.map((c) => c.name) ?? [];
  const cell = (v: unknown) => (v === null || v === undefined ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return (
    <div class="two">
      <div class="scroll" tabIndex={0} role="region" aria-label="Scrollable table">
        <h4>Read from the source</h4>
        <table class="list">
          <thead>
            <tr>
              {before.map((c) => (
                <th key={c}>{c}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                {before.map((c) => (
                  <td key={c}>{cell(r.before[c])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="scroll" tabIndex={0} role="region" aria-label="Scrollable table">
        <h4>Written to the destination</h4>
        <table class="list" data-testid="preview-after">
          <thead>
            <tr>
              {out.map((c) => (
                <th key={c}>{c}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                {r.dropped ? (
                  <td colSpan={Math.max(out.length, 1)} class="muted">
                    dropped by a filter
                  </td>
                ) : r.error ? (
                  <td colSpan={Math.max(out.length, 1)} class="error">
                    {r.error}
                  </td>
                ) : (
                  out.map((c) => <td key={c}>{cell(r.after?.[c])}</td>)
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function TransformsStep({ source, choices, update, maskKey }: { source: string; choices: Choice[]; update: (id: string, f: (c: Choice) => Choice) => void; maskKey: string }) {
  const [which, setWhich] = useState(choices[0] ? tableId(choices[0].table) : '');
  const [preview, setPreview] = useState<Preview | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState('');
  const choice = choices.find((c) => tableId(c.table) === which);
  const transforms = useMemo(() => transformsFor(choices, maskKey), [choices, maskKey]);
  useEffect(() => {
    if (!choice) return;
    let live = true;
    const t = window.setTimeout(async () => {
      try {
        const res = must(await api.POST('/api/v1/transforms/preview', { body: { source: { connection: source, table: which, limit: 5 }, transforms: transforms as Schemas['Transform'][] } }));
        if (!live) return;
        setPreview(res);
        setProblems([]);
        setError('');
      } catch (e) {
        if (!live) return;
        setPreview(null);
        setProblems(e instanceof ApiError ? e.problems : []);
        setError(errorText(e));
      }
    }, 300);
    return () => {
      live = false;
      window.clearTimeout(t);
    };
  }, [source, which, transforms, choice]);
  const filterIndex = choices.filter((c) => c.filter.trim()).findIndex((c) => tableId(c.table) === which);
  return (
    <div>
      <div class="toolbar">
        <label>
          Table{' '}
          <select value={which} onChange={(e) => setWhich(e.currentTarget.value)}>
            {choices.map((c) => (
              <option key={tableId(c.table)} value={tableId(c.table)}>
                {tableId(c.table)}
              </option>
            ))}
          </select>
        </label>
      </div>
      {choice && (
        <div class="form">
          <div class="field">
          <label for="filter">Keep only the rows where (optional)</label>
          <input
            id="filter"
            value={choice.filter}
            placeholder={'e.g. row.status != "test"'}
            onInput={(e) => {
              const v = e.currentTarget.value;
              update(which, (x) => ({ ...x, filter: v }));
            }}
          />
          <FieldProblems problems={problems} path={`transforms[${filterIndex}]`} />
          </div>
        </div>
      )}
      {error && !problems.some((p) => p.path.startsWith(`transforms[${filterIndex}]`)) && <ErrorText error={error} />}
      <h3>Preview: live rows of {which}, before and after</h3>
      {preview ? <PreviewTable preview={preview} /> : !error && <p class="loading">Reading sample rows…</p>}
    </div>
  );
}

function DestinationStep({ destinations, o, set, plan, planning }: { destinations: Schemas['ConnectionView'][]; o: Options; set: (o: Options) => void; plan: Plan | null; planning: boolean }) {
  return (
    <div class="form">
      <div class="field">
        <label for="p-name">Pipeline name</label>
        <input id="p-name" value={o.name} onInput={(e) => set({ ...o, name: e.currentTarget.value })} placeholder="lower case, digits and _" />
        <FieldProblems problems={plan?.problems ?? []} path={`pipelines[${o.name}].name`} />
      </div>
      <div class="field">
        <label for="p-dest">Destination</label>
        <select id="p-dest" value={o.destination} onChange={(e) => set({ ...o, destination: e.currentTarget.value })}>
          <option value="">choose…</option>
          {destinations.map((d) => (
            <option key={d.name} value={d.name}>
              {d.name} ({d.type})
            </option>
          ))}
        </select>
      </div>
      <div class="field check">
        <input id="p-snap" type="checkbox" checked={o.snapshot} onChange={(e) => set({ ...o, snapshot: e.currentTarget.checked })} />
        <label for="p-snap">Copy the tables' current rows first (snapshot), then stream changes</label>
      </div>
      <div class="field">
        <label for="p-wait">Longest wait before a batch is written</label>
        <input id="p-wait" value={o.maxWait} onInput={(e) => set({ ...o, maxWait: e.currentTarget.value })} placeholder="default: 1s" />
      </div>
      <div class="field">
        <label for="p-rename">When a source column is renamed</label>
        <select id="p-rename" value={o.renamePolicy} onChange={(e) => set({ ...o, renamePolicy: e.currentTarget.value })}>
          <option value="hold">hold the table until someone decides (default)</option>
          <option value="apply">rename the destination column</option>
          <option value="new_column">add the new name as a new column</option>
          <option value="fail">fail the pipeline</option>
        </select>
      </div>
      <div class="field">
        <label for="p-drop">When a source column is dropped</label>
        <select id="p-drop" value={o.dropPolicy} onChange={(e) => set({ ...o, dropPolicy: e.currentTarget.value })}>
          <option value="keep">keep the destination column (default)</option>
          <option value="hold">hold the table until someone decides</option>
          <option value="fail">fail the pipeline</option>
        </select>
      </div>
      <h3>Destination tables</h3>
      {planning && <p class="loading">Checking the source, the destination and the names…</p>}
      {plan && <PlanTables plan={plan} destination={o.destination} />}
      {plan && !plan.ok && <Checks plan={plan} />}
    </div>
  );
}

// existing looks each planned destination table up in the destination's
// catalog (what exists there already): its table, null when it does not
// exist, undefined while unknown (not looked up, or the destination lists
// no tables).
function useExisting(plan: Plan, destination: string) {
  const [found, setFound] = useState<Record<string, CatalogTable | null>>({});
  const names = plan.tables.map((t) => t.destination ?? '').filter((n) => n);
  const key = destination + '|' + names.join(',');
  useEffect(() => {
    if (!destination || !names.length) return;
    let live = true;
    void (async () => {
      const out: Record<string, CatalogTable | null> = {};
      for (const name of names) {
        // the catalog names tables namespace.name; a destination name may
        // carry a project or database before them
        const parts = name.toLowerCase().split('.');
        const short = parts.slice(-2).join('.');
        const { data } = await api.GET('/api/v1/connections/{name}/catalog', {
          params: { path: { name: destination }, query: { role: 'destination', search: short, limit: 10 } },
        });
        if (!data) return; // the destination lists no tables: say nothing
        out[name] = data.tables.find((t) => `${t.table.namespace}.${t.table.name}`.toLowerCase() === short) ?? null;
      }
      if (live) setFound(out);
    })();
    return () => {
      live = false;
    };
  }, [key]);
  return found;
}

function PlanTables({ plan, destination }: { plan: Plan; destination: string }) {
  const existing = useExisting(plan, destination);
  return (
    <table class="list" data-testid="plan">
      <thead>
        <tr>
          <th>Source table</th>
          <th>Destination</th>
          <th>Columns there</th>
        </tr>
      </thead>
      <tbody>
        {plan.tables.map((t) => {
          const ex = t.destination ? existing[t.destination] : undefined;
          return (
            <tr key={t.source} data-plan-table={t.source}>
              <td>{t.source}</td>
              <td>
                {t.destination ?? '–'}
                {ex === null && <p class="hint" data-testid="dest-new">new table</p>}
                {ex && (
                  <p class="notice" data-testid="dest-exists">
                    exists already ({ex.columns.length} columns
                    {ex.estimated_rows !== null && ex.estimated_rows !== undefined ? `, ~${count(ex.estimated_rows)} rows` : ''})
                    {ex.columns.some((c) => c.name.toLowerCase() === '_cdc_version')
                      ? ': made by cdcd; the pipeline writes into it, rows of the same key replaced'
                      : ": not made by cdcd (no _cdc_version column): the pipeline will refuse to write into it; choose another name or schema"}
                  </p>
                )}
              </td>
              <td>
                {t.columns?.map((c) => `${c.name} ${c.type}${c.key ? ' (key)' : ''}`).join(', ')}
                {t.problems?.map((p) => (
                  <p key={p} class="error">
                    {p}
                  </p>
                ))}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Checks({ plan }: { plan: Plan }) {
  const list = (title: string, r?: Schemas['CheckResult']) =>
    r && (
      <div class={'check-result ' + (r.ok ? 'ok' : 'failed')}>
        <strong>
          {title}: {r.ok ? 'ok' : 'failed'}
        </strong>
        {r.problems?.map((p) => (
          <pre key={p} class="remedy">
            {p}
          </pre>
        ))}
        {r.warnings?.map((w) => (
          <pre key={w} class="remedy notice">
            {w}
          </pre>
        ))}
      </div>
    );
  return (
    <div data-testid="validation">
      <p role="status" class={plan.ok ? 'ok-text' : 'error'}>
        {plan.ok ? 'Everything checks out: the pipeline can be created.' : 'Not yet: fix what is listed below.'}
      </p>
      {plan.problems?.length ? (
        <ul class="field-problems">
          {plan.problems.map((p) => (
            <li key={p.path + p.message}>
              <code>{p.path}</code> {p.message}
            </li>
          ))}
        </ul>
      ) : null}
      {list('Source', plan.source)}
      {list('Destination', plan.destination)}
    </div>
  );
}

export function Wizard() {
  const { who } = useSession();
  const loc = useLocation();
  const [step, setStep] = useState(0);
  const [connections, setConnections] = useState<Schemas['ConnectionView'][]>([]);
  const [roles, setRoles] = useState<Map<string, string[]>>(new Map());
  const [error, setError] = useState('');
  const [source, setSource] = useState('');
  const [selected, setSelected] = useState<Map<string, Choice>>(new Map());
  const [o, setO] = useState<Options>({ name: '', destination: '', snapshot: true, maxWait: '', maskKey: '', renamePolicy: 'hold', dropPolicy: 'keep' });
  const [plan, setPlan] = useState<Plan | null>(null);
  const [planning, setPlanning] = useState(false);
  const [creating, setCreating] = useState(false);
  const [copied, setCopied] = useState('');

  useEffect(() => {
    void (async () => {
      try {
        const [cs, ts] = await Promise.all([api.GET('/api/v1/connections'), api.GET('/api/v1/types')]);
        setConnections(must(cs).connections);
        setRoles(new Map(must(ts).connections.map((c) => [c.type, c.roles.map((r) => r.role ?? '')])));
      } catch (e) {
        setError(errorText(e));
      }
    })();
  }, []);

  const choices = [...selected.values()];
  const sourceConfig = connections.find((c) => c.name === source)?.config as { tables?: unknown } | undefined;
  const fixed = Array.isArray(sourceConfig?.tables) ? (sourceConfig.tables as unknown[]).map(String) : [];
  const doc = useMemo(() => documentFor(source, fixed.length > 0, choices, o), [source, selected, o, fixed.length]);
  const yaml = useMemo(() => toYAML(doc), [doc]);

  const runPlan = async () => {
    setPlanning(true);
    try {
      setPlan(must(await api.POST('/api/v1/plan', { body: doc as unknown as Schemas['NewPipeline'] })));
      setError('');
    } catch (e) {
      if (e instanceof ApiError && e.problems.length) {
        setPlan({ ok: false, problems: e.problems, tables: [] });
        setError('');
      } else setError(errorText(e));
    } finally {
      setPlanning(false);
    }
  };
  useEffect(() => {
    if (step !== 4 || !o.destination || !o.name) return;
    const t = window.setTimeout(() => void runPlan(), 400);
    return () => window.clearTimeout(t);
  }, [step, yaml]);

  if (!can(who, 'editor'))
    return (
      <section>
        <h1>New pipeline</h1>
        <p>Only an editor or an admin creates pipelines.</p>
      </section>
    );

  const sources = connections.filter((c) => (roles.get(c.type) ?? []).includes('source') && c.type !== 'datagen');
  const destinations = connections.filter((c) => (roles.get(c.type) ?? []).includes('destination'));
  const update = (id: string, f: (c: Choice) => Choice) => {
    const m = new Map(selected);
    const c = m.get(id);
    if (c) m.set(id, f(c));
    setSelected(m);
  };
  const toggle = (t: CatalogTable) => {
    const m = new Map(selected);
    const id = tableId(t);
    if (m.has(id)) m.delete(id);
    else m.set(id, { table: t, exclude: [], mask: {}, rename: {}, filter: '' });
    setSelected(m);
  };
  const selectMany = (ts: CatalogTable[]) => {
    const m = new Map(selected);
    for (const t of ts) if (!m.has(tableId(t))) m.set(tableId(t), { table: t, exclude: [], mask: {}, rename: {}, filter: '' });
    setSelected(m);
  };
  const needsKey = choices.some((c) => Object.values(c.mask).some((m) => m === 'hash' || m === 'tokenize'));
  const blocked = [
    !source,
    selected.size === 0,
    needsKey && o.maskKey.length < 16 && !o.maskKey.startsWith('${'),
    false,
    !o.name || !o.destination,
    false,
  ];
  const create = async () => {
    setCreating(true);
    setError('');
    try {
      must(await api.POST('/api/v1/pipelines', { body: doc as unknown as Schemas['NewPipeline'] }));
      loc.route('/pipelines/' + encodeURIComponent(o.name));
    } catch (e) {
      setError(errorText(e));
      if (e instanceof ApiError && e.problems.length) setPlan({ ok: false, problems: e.problems, tables: [] });
    } finally {
      setCreating(false);
    }
  };
  const download = 'data:application/yaml;charset=utf-8,' + encodeURIComponent(yaml);

  return (
    <section>
      <p>
        <a href="/">← Pipelines</a>
      </p>
      <h1>New pipeline</h1>
      <ol class="stepper" aria-label="Steps">
        {steps.map((s, i) => (
          <li key={s} aria-current={i === step ? 'step' : undefined} class={i < step ? 'done' : undefined}>
            {i < step ? (
              <button type="button" class="link" onClick={() => setStep(i)}>
                {i + 1}. {s}
              </button>
            ) : (
              <span>
                {i + 1}. {s}
              </span>
            )}
          </li>
        ))}
      </ol>
      <ErrorText error={error} />
      <h2>{steps[step]}</h2>
      {step === 0 && <SourceStep connections={sources} value={source} onChange={(v) => (setSource(v), setSelected(new Map()))} />}
      {step === 1 && <TablesStep source={source} fixed={fixed} selected={selected} onToggle={toggle} onSelectMany={selectMany} />}
      {step === 2 && <ColumnsStep choices={choices} update={update} maskKey={o.maskKey} setMaskKey={(k) => setO({ ...o, maskKey: k })} />}
      {step === 3 && <TransformsStep source={source} choices={choices} update={update} maskKey={o.maskKey} />}
      {step === 4 && <DestinationStep destinations={destinations} o={o} set={setO} plan={plan} planning={planning} />}
      {step === 5 && (
        <div>
          <p>The pipeline as a document: keep it in version control and apply it with <code>cdcd pipelines apply -f</code>.</p>
          <pre class="yaml" data-testid="yaml">
            {yaml}
          </pre>
          <div class="actions">
            <button type="button" onClick={() => void navigator.clipboard.writeText(yaml).then(() => setCopied('Copied.'), () => setCopied('Copy failed: select the text instead.'))}>
              Copy
            </button>
            <a class="button" href={download} download={`${o.name || 'pipeline'}.yaml`}>
              Download
            </a>
            {copied && <span role="status">{copied}</span>}
          </div>
          <div class="actions">
            <button type="button" disabled={planning} onClick={() => void runPlan()}>
              Validate
            </button>
            <button type="button" class="primary" disabled={creating} onClick={() => void create()}>
              Create
            </button>
          </div>
          {plan && <Checks plan={plan} />}
          {plan && <PlanTables plan={plan} destination={o.destination} />}
        </div>
      )}
      <div class="actions wizard-nav">
        {step > 0 && (
          <button type="button" onClick={() => setStep(step - 1)}>
            Back
          </button>
        )}
        {step < steps.length - 1 && (
          <button type="button" class="primary" disabled={blocked[step]} onClick={() => setStep(step + 1)}>
            Next
          </button>
        )}
      </div>
    </section>
  );
}
