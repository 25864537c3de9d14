import { useState } from 'preact/hooks';

export function SignIn({ problem, onToken }: { problem: string; onToken: (t: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <main class="signin">
      <h1>cdcd</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) onToken(value.trim());
        }}
      >
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="current-password" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
        <p class="hint">
          An admin creates one on the server with <code>cdcd tokens create NAME --role viewer|editor|admin</code>. It is kept in this tab only.
        </p>
        {problem && (
          <p role="alert" class="error">
            {problem}
          </p>
        )}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
