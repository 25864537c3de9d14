import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { api, ApiError, errorText, must, type Problem, type Schemas } from '../api';
import { ErrorText } from '../components';
import { can, useSession } from '../session';

type Spec = Record<string, unknown> & {
  source?: { connection?: string; type?: string; config?: Record<string, unknown> };
  transforms?: unknown[];
};

function tablesOf(spec: Spec): string[] {
  const t = spec.source?.config?.tables;
  return Array.isArray(t) ? t.map(String) : [];
}

function withTables(spec: Spec, tables: string[]): Spec {
  const source = { ...(spec.source ?? {}) };
  source.config = { ...(source.config ?? {}), tables };
  return { ...spec, source };
}

// EditPipeline changes a pipeline: its tables (an added table is snapshotted
// while the others stream; a removed one stops), or its whole document, with
// the choice a changed transform chain needs made explicit.
export function EditPipeline() {
  const { params } = useRoute();
  const name = params.name ?? '';
  const { who } = useSession();
  const loc = useLocation();
  const [original, setOriginal] = useState<Spec | null>(null);
  const [text, setText] = useState('');
  const [addTable, setAddTable] = useState('');
  const [error, setError] = useState('');
  const [problems, setProblems] = useState<Problem[]>([]);
  const [change, setChange] = useState<'' | 'keep_written' | 'resync'>('');
  const [plan, setPlan] = useState<Schemas['Plan'] | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    void (async () => {
      try {
        const p = must(await api.GET('/api/v1/pipelines/{name}', { params: { path: { name } } }));
        const spec = p.spec as Spec;
        setOriginal(spec);
        setText(JSON.stringify(spec, null, 2));
      } catch (e) {
        setError(errorText(e));
      }
    })();
  }, [name]);

  let spec: Spec | null = null;
  let parseError = '';
  try {
    spec = JSON.parse(text) as Spec;
  } catch (e) {
    parseError = errorText(e);
  }
  const tables = spec ? tablesOf(spec) : [];
  const fixedTables = !!spec && !Array.isArray(spec.source?.config?.tables);
  const transformsChanged = !!original && !!spec && JSON.stringify(original.transforms ?? []) !== JSON.stringify(spec.transforms ?? []);

  const setSpec = (s: Spec) => setText(JSON.stringify(s, null, 2));

  const validate = async () => {
    if (!spec) return;
    setBusy(true);
    try {
      setPlan(must(await api.POST('/api/v1/plan', { body: spec as unknown as Schemas['NewPipeline'] })));
      setProblems([]);
      setError('');
    } catch (e) {
      if (e instanceof ApiError) setProblems(e.problems);
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const save = async () => {
    if (!spec) return;
    setBusy(true);
    setError('');
    try {
      must(
        await api.PUT('/api/v1/pipelines/{name}', {
          params: { path: { name }, query: change ? { transform_change: change } : {} },
          body: spec as unknown as Schemas['Pipeline'],
        }),
      );
      loc.route('/pipelines/' + encodeURIComponent(name));
    } catch (e) {
      if (e instanceof ApiError) setProblems(e.problems);
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  if (!can(who, 'editor'))
    return (
      <section>
        <h1>Edit {name}</h1>
        <p>Only an editor or an admin changes pipelines.</p>
      </section>
    );
  return (
    <section>
      <p>
        <a href={'/pipelines/' + encodeURIComponent(name)}>← {name}</a>
      </p>
      <h1>Edit {name}</h1>
      <ErrorText error={error} />
      {problems.length > 0 && (
        <ul class="field-problems" role="alert">
          {problems.map((p) => (
            <li key={p.path + p.message}>
              <code>{p.path}</code> {p.message}
            </li>
          ))}
        </ul>
      )}
      {!original ? (
        <p class="loading">Loading…</p>
      ) : (
        <>
          <h2>Tables</h2>
          {fixedTables ? (
            <p class="notice">The source connection names the tables; change them there.</p>
          ) : (
            <>
              <p class="muted">A table added is snapshotted while the others keep streaming; a table removed stops (its rows stay at the destination).</p>
              <ul class="tables-edit" data-testid="edit-tables">
                {tables.map((t) => (
                  <li key={t}>
                    {t}{' '}
                    <button type="button" class="link" aria-label={'Remove ' + t} onClick={() => spec && setSpec(withTables(spec, tables.filter((x) => x !== t)))}>
                      remove
                    </button>
                  </li>
                ))}
              </ul>
              <form
                class="actions"
                onSubmit={(e) => {
                  e.preventDefault();
                  const t = addTable.trim();
                  if (spec && t && !tables.includes(t)) setSpec(withTables(spec, [...tables, t]));
                  setAddTable('');
                }}
              >
                <label for="add-table">Add a table</label>
                <input id="add-table" value={addTable} placeholder="schema.table" onInput={(e) => setAddTable(e.currentTarget.value)} />
                <button type="submit">Add</button>
              </form>
            </>
          )}
          <h2>The document</h2>
          <p class="muted">Secrets show as ****** and stay as stored unless you type new ones.</p>
          <textarea aria-label="Pipeline document (JSON)" rows={18} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          {parseError && <p class="error">Not JSON: {parseError}</p>}
          {transformsChanged && (
            <fieldset class="choices" data-testid="transform-change">
              <legend>The transforms changed. The rows already written were written by the old chain:</legend>
              <label class="choice">
                <input type="radio" name="tc" value="keep_written" checked={change === 'keep_written'} onChange={() => setChange('keep_written')} />
                keep them as they are; new changes go through the new chain
              </label>
              <label class="choice">
                <input type="radio" name="tc" value="resync" checked={change === 'resync'} onChange={() => setChange('resync')} />
                resync: snapshot every table again through the new chain
              </label>
            </fieldset>
          )}
          <div class="actions">
            <button type="button" disabled={busy || !spec} onClick={() => void validate()}>
              Validate
            </button>
            <button type="button" class="primary" disabled={busy || !spec || (transformsChanged && !change)} onClick={() => void save()}>
              Save
            </button>
          </div>
          {plan && (
            <p role="status" class={plan.ok ? 'ok-text' : 'error'} data-testid="edit-validation">
              {plan.ok ? 'Everything checks out.' : 'Not yet: ' + [...(plan.problems ?? []).map((p) => `${p.path}: ${p.message}`), ...(plan.source?.problems ?? []), ...(plan.destination?.problems ?? []), ...plan.tables.flatMap((t) => t.problems ?? [])].join('; ')}
            </p>
          )}
        </>
      )}
    </section>
  );
}
