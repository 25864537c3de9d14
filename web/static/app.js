const tokenInput = document.getElementById('token');
tokenInput.value = sessionStorage.getItem('cdcd_token') || '';
tokenInput.addEventListener('change', () => { sessionStorage.setItem('cdcd_token', tokenInput.value); refresh(); });

async function api(method, path) {
  const headers = {};
  if (tokenInput.value) headers['Authorization'] = 'Bearer ' + tokenInput.value;
  const r = await fetch(path, { method, headers });
  const body = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}

function snapshotCell(p) {
  const td = document.createElement('td');
  const tables = (p.status && p.status.progress && p.status.progress.tables || []).filter(t => t.state === 'snapshotting');
  if (!tables.length) { td.textContent = '–'; return td; }
  let done = 0, est = 0, unknown = false;
  for (const t of tables) {
    done += t.rows_done;
    if (t.rows_estimated === null) unknown = true; else est += t.rows_estimated;
  }
  if (unknown) { td.textContent = done + ' rows (total unknown: no statistics)'; return td; }
  const bar = document.createElement('progress');
  bar.max = est || 1; bar.value = Math.min(done, est);
  td.append(bar, ' ' + done + ' / ' + est);
  return td;
}

async function act(name, verb) {
  try { await api('POST', '/api/v1/pipelines/' + encodeURIComponent(name) + '/' + verb); } catch (e) { show(e); }
  refresh();
}

function show(e) { document.getElementById('msg').textContent = e ? String(e.message || e) : ''; }

async function refresh() {
  let data;
  try { data = await api('GET', '/api/v1/pipelines'); show(null); } catch (e) { show(e); return; }
  const rows = document.getElementById('rows');
  rows.replaceChildren();
  if (!data.pipelines.length) {
    const tr = document.createElement('tr');
    tr.append(cell('No pipelines yet: create one with `cdcd pipelines apply -f FILE` or POST /api/v1/pipelines.'));
    tr.firstChild.colSpan = 7;
    rows.append(tr);
  }
  for (const p of data.pipelines) {
    const tr = document.createElement('tr');
    const prog = p.status && p.status.progress;
    const state = document.createElement('td');
    const badge = document.createElement('span');
    badge.className = 'state ' + p.state; badge.textContent = p.state;
    state.append(badge);
    const notes = [...((p.status && p.status.reasons) || []), ...((prog && prog.source && prog.source.warnings) || []).map(w => 'warning: ' + w)];
    if (p.status && p.status.degraded) badge.textContent += ' (degraded)';
    for (const n of notes) {
      const d = document.createElement('div');
      d.className = 'note'; d.textContent = n; // text, never HTML: the strings come from the server
      state.append(d);
    }
    const btn = document.createElement('button');
    const paused = p.paused || p.state === 'failed' || p.state === 'needs_resync';
    btn.textContent = paused ? 'Resume' : 'Pause';
    btn.onclick = () => act(p.name, paused ? 'resume' : 'pause');
    const actions = document.createElement('td'); actions.append(btn);
    const name = cell(p.name, 'name');
    name.title = 'show its events';
    name.onclick = () => showEvents(p.name);
    tr.append(name, state, cell(prog ? prog.changes_written : '–'),
      cell(lagText(prog)),
      snapshotCell(p), cell(p.last_error || '', 'err'), actions);
    rows.append(tr);
  }
}
// lagText: unknown (null) and caught up (0) read differently.
function lagText(prog) {
  if (!prog || prog.lag_seconds === null || prog.lag_seconds === undefined) return 'unknown';
  if (prog.caught_up) return '0 s (caught up)';
  return prog.lag_seconds.toFixed(1) + ' s';
}
// events: the selected pipeline's log, newest first, polled after the last seq
let eventsOf = null, lastSeq = 0;
function showEvents(name) {
  eventsOf = name; lastSeq = 0;
  document.getElementById('events').hidden = false;
  document.getElementById('events-name').textContent = name;
  document.getElementById('event-rows').replaceChildren();
  pollEvents();
}
async function pollEvents() {
  if (!eventsOf) return;
  const name = eventsOf;
  let page;
  try { page = await api('GET', '/api/v1/pipelines/' + encodeURIComponent(name) + '/events?after=' + lastSeq + '&limit=1000'); } catch (e) { show(e); return; }
  if (name !== eventsOf) return;
  const body = document.getElementById('event-rows');
  for (const e of page.events) {
    const tr = document.createElement('tr');
    tr.className = 'level-' + e.level;
    tr.append(cell(new Date(e.at).toLocaleString()), cell(e.level), cell(e.kind), cell(e.table || ''), cell(e.message));
    body.prepend(tr);
    lastSeq = e.seq;
  }
  while (body.children.length > 500) body.lastChild.remove();
}
// active alerts: a banner line each (text, never HTML)
async function refreshAlerts() {
  let data;
  try { data = await api('GET', '/api/v1/alerts/active'); } catch (e) { return; }
  const ul = document.getElementById('alerts');
  ul.replaceChildren();
  for (const a of data.alerts) {
    const li = document.createElement('li');
    li.className = 'alert ' + a.state + ' ' + a.severity;
    li.textContent = (a.state === 'firing' ? 'FIRING' : 'pending') + ' · ' + a.rule + ' · ' + a.summary;
    li.title = a.detail;
    ul.append(li);
  }
  ul.hidden = data.alerts.length === 0;
}
refresh();
refreshAlerts();
setInterval(refresh, 2000);
setInterval(refreshAlerts, 5000);
setInterval(pollEvents, 2000);
