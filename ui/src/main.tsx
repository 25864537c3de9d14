import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { LocationProvider, Router, Route, useLocation } from 'preact-iso';
import { api, ApiError, errorText, must, setToken, token, type Identity } from './api';
import { SessionContext, can } from './session';
import { SignIn } from './pages/SignIn';
import { Pipelines } from './pages/Pipelines';
import { PipelinePage } from './pages/Pipeline';
import { Wizard } from './pages/Wizard';
import { EditPipeline } from './pages/Edit';
import { Connections, ConnectionEdit } from './pages/Connections';
import { Tokens } from './pages/Tokens';
import { Alerts } from './pages/Alerts';
import { NotFound } from './pages/NotFound';
import './app.css';

function Nav({ who, signOut }: { who: Identity; signOut: () => void }) {
  const { path } = useLocation();
  const link = (href: string, label: string) => {
    const current = href === '/' ? path === '/' || path.startsWith('/pipelines') : path.startsWith(href);
    return (
      <a href={href} aria-current={current ? 'page' : undefined}>
        {label}
      </a>
    );
  };
  return (
    <header class="top">
      <a class="brand" href="/">
        cdcd
      </a>
      <nav aria-label="Main">
        {link('/', 'Pipelines')}
        {link('/connections', 'Connections')}
        {link('/alerts', 'Alerts')}
        {can(who, 'admin') && link('/tokens', 'Tokens & audit')}
      </nav>
      <span class="grow" />
      <span class="who" data-testid="who">
        {who.open ? 'open mode (no token exists yet)' : `${who.name} · ${who.role}`}
      </span>
      {!who.open && (
        <button type="button" class="link" onClick={signOut}>
          Sign out
        </button>
      )}
    </header>
  );
}

function App() {
  const [who, setWho] = useState<Identity | null>(null);
  const [state, setState] = useState<'loading' | 'signin' | 'ready' | 'down'>('loading');
  const [problem, setProblem] = useState('');

  const load = useCallback(async () => {
    try {
      const w = must(await api.GET('/api/v1/whoami'));
      setWho(w);
      setState('ready');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setProblem(token() ? errorText(e) : '');
        setState('signin');
      } else {
        setProblem(errorText(e));
        setState('down');
      }
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  const signOut = () => {
    setToken('');
    setWho(null);
    setState('signin');
    setProblem('');
  };

  if (state === 'loading') return <p class="loading">Loading…</p>;
  if (state === 'down')
    return (
      <main class="page">
        <p role="alert" class="error">
          The server did not answer: {problem}
        </p>
        <button type="button" onClick={() => void load()}>
          Try again
        </button>
      </main>
    );
  if (state === 'signin' || !who)
    return (
      <SignIn
        problem={problem}
        onToken={(t) => {
          setToken(t);
          void load();
        }}
      />
    );
  return (
    <SessionContext.Provider value={{ who, signOut }}>
      <LocationProvider>
        <Nav who={who} signOut={signOut} />
        <main class="page">
          <Router>
            <Route path="/" component={Pipelines} />
            <Route path="/pipelines/new" component={Wizard} />
            <Route path="/pipelines/:name" component={PipelinePage} />
            <Route path="/pipelines/:name/edit" component={EditPipeline} />
            <Route path="/connections" component={Connections} />
            <Route path="/connections/new" component={ConnectionEdit} />
            <Route path="/connections/:name" component={ConnectionEdit} />
            <Route path="/tokens" component={Tokens} />
            <Route path="/alerts" component={Alerts} />
            <Route default component={NotFound} />
          </Router>
        </main>
      </LocationProvider>
    </SessionContext.Provider>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
