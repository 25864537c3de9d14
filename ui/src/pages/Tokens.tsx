import { useState } from 'preact/hooks';
import { api, ApiError, errorText, must, type Problem, type Role } from '../api';
import { ErrorText, FieldProblems, usePoll } from '../components';
import { when } from '../format';
import { can, useSession } from '../session';

export function Tokens() {
  const { who } = useSession();
  const tokens = usePoll(async () => must(await api.GET('/api/v1/tokens')).tokens, 10000);
  const audit = usePoll(async () => must(await api.GET('/api/v1/audit', { params: { query: { limit: 50 } } })).entries, 10000);
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [expires, setExpires] = useState('');
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState('');
  const [created, setCreated] = useState('');

  if (!can(who, 'admin')) {
    return (
      <section>
        <h1>Tokens & audit</h1>
        <p>Only an admin token sees tokens and the audit log.</p>
      </section>
    );
  }

  const create = async (e: SubmitEvent) => {
    e.preventDefault();
    setError('');
    setProblems([]);
    setCreated('');
    try {
      const t = must(await api.POST('/api/v1/tokens', { body: { name, role, ...(expires ? { expires_in: expires } : {}) } }));
      setCreated(t.token);
      setName('');
      tokens.reload();
    } catch (err) {
      if (err instanceof ApiError) setProblems(err.problems);
      setError(errorText(err));
    }
  };
  const revoke = async (id: string) => {
    setError('');
    try {
      must(await api.DELETE('/api/v1/tokens/{id}', { params: { path: { id } } }));
      tokens.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section>
      <h1>Tokens & audit</h1>
      <ErrorText error={error} />
      <h2>Tokens</h2>
      <ErrorText error={tokens.error} />
      <table class="list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Role</th>
            <th>Created</th>
            <th>Last used</th>
            <th>Expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(tokens.data ?? []).map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td>
              <td>{t.role}</td>
              <td>{when(t.created_at)}</td>
              <td>{when(t.last_used_at)}</td>
              <td>{t.expires_at ? when(t.expires_at) : 'never'}</td>
              <td>
                <button type="button" class="danger" onClick={() => void revoke(t.id)}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="form inline" onSubmit={(e) => void create(e)}>
        <h3>New token</h3>
        <div class="field">
          <label for="t-name">Name</label>
          <input id="t-name" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
          <FieldProblems problems={problems} path="name" />
        </div>
        <div class="field">
          <label for="t-role">Role</label>
          <select id="t-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
            <option value="viewer">viewer: reads everything but secrets</option>
            <option value="editor">editor: also changes connections and pipelines</option>
            <option value="admin">admin: also tokens and the audit log</option>
          </select>
        </div>
        <div class="field">
          <label for="t-exp">Expires in</label>
          <input id="t-exp" value={expires} placeholder="never, or e.g. 720h" onInput={(e) => setExpires(e.currentTarget.value)} />
          <FieldProblems problems={problems} path="expires_in" />
        </div>
        <div class="actions">
          <button type="submit" class="primary">
            Create
          </button>
        </div>
      </form>
      {created && (
        <div class="card" role="status">
          <p>
            The new token, shown this once: copy it now.
          </p>
          <pre class="secret" data-testid="new-token">{created}</pre>
        </div>
      )}
      <h2>Audit log</h2>
      <ErrorText error={audit.error} />
      <table class="list">
        <thead>
          <tr>
            <th>At</th>
            <th>Token</th>
            <th>Action</th>
            <th>Target</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {(audit.data ?? []).map((a) => (
            <tr key={a.id}>
              <td>{when(a.at)}</td>
              <td>{a.token_name}</td>
              <td>{a.action}</td>
              <td>{a.target}</td>
              <td>
                {a.status}
                {a.error ? ': ' + a.error : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
