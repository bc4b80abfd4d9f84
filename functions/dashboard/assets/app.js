
'use strict';
// HemoStat dashboard: polls the JSON API and renders it. Everything from
// the API goes into the page as text (textContent, text nodes, attribute
// values of data-* and title), never as markup.
(function () {
  // Relative to wherever the page is served: /, /urls/<function>/, /<stage>/.
  const path = location.pathname;
  const base = path.endsWith('/') ? path : path + '/';
  const refreshMs = Math.min(5000, Math.max(2000, Number(document.body.dataset.refreshMs) || 3000));
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  const state = {
    selected: null,       // container key charted
    selectedEvent: null,  // identity of the event shown in details
    events: [],
    containers: [],
    approvals: null,      // the ids listed, to keep a reason being typed
    timer: null,
    running: false,
    again: false,
  };

  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of children || []) {
      if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // A CSS class from data: only letters, digits, dash and underscore survive.
  const cls = (s) => String(s || '').replace(/[^A-Za-z0-9_-]/g, '');
  const pct = (x) => (typeof x === 'number' ? x.toFixed(1) + '%' : '–');

  function seedTime(ts) {
    // The seed's timestamps are UTC without an offset.
    const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(ts) ? ts : ts + 'Z');
    return isNaN(d.getTime()) ? null : d;
  }
  function clock(d) { return d ? d.toLocaleTimeString() : ''; }
  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  // A duration in seconds, for a silence's or breaker's time left.
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
    const h = Math.floor(s / 3600), m = Math.round((s % 3600) / 60);
    return h + ' h' + (m ? ' ' + m + ' min' : '');
  }
  function until(ms) {
    const d = new Date(ms);
    return isNaN(d.getTime()) ? '' : d.toLocaleString();
  }

  async function getJson(rel) {
    const r = await fetch(base + rel, { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!r.ok) {
      let why = 'HTTP ' + r.status;
      try { const b = await r.json(); if (b && b.error) why += ': ' + b.error; } catch (e) { /* not JSON */ }
      throw new Error(rel.split('?')[0] + ': ' + why);
    }
    return r.json();
  }

  // An answer to an approval: the header tells the dashboard the page
  // itself sends it (a form or a page of another site cannot).
  async function answer(id, verdict, reason) {
    const r = await fetch(base + 'api/approvals/' + encodeURIComponent(id) + '/' + verdict, {
      method: 'POST',
      cache: 'no-store',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-hemostat-request': '1' },
      body: JSON.stringify(reason ? { reason: reason } : {}),
    });
    let body = null;
    try { body = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error('HTTP ' + r.status + (body && body.error ? ': ' + body.error : ''));
    return body;
  }

  function renderApprovals(view) {
    const list = view.approvals || [];
    $('approval-count').textContent = String(list.length);
    $('approvals-empty').hidden = list.length > 0;
    // Re-rendered only when the list changes: a reason being typed stays.
    const ids = list.map((a) => a.id).join(',');
    if (ids === state.approvals) return;
    state.approvals = ids;
    $('approvals').replaceChildren(...list.map((a) => {
      const key = a.host + '/' + a.container;
      const reason = el('input', { type: 'text', placeholder: 'reason to deny', 'aria-label': 'reason to deny', maxlength: '500' });
      const approve = el('button', { type: 'button', class: 'approve', text: 'Approve' });
      const deny = el('button', { type: 'button', class: 'deny', text: 'Deny' });
      const send = (verdict) => async () => {
        approve.disabled = true;
        deny.disabled = true;
        try {
          const sent = await answer(a.id, verdict, verdict === 'deny' ? reason.value.trim() : '');
          $('approval-status').textContent = verdict + ' of ' + a.action + ' on ' + key + ' sent by ' + sent.by;
        } catch (err) {
          $('approval-status').textContent = verdict + ' of ' + a.action + ' on ' + key + ' failed: ' + err.message;
          approve.disabled = false;
          deny.disabled = false;
        }
        kick();
      };
      approve.addEventListener('click', send('approve'));
      deny.addEventListener('click', send('deny'));
      return el('tr', { 'data-approval': a.id, 'data-container': key, 'data-action': a.action }, [
        el('td', { text: key }),
        el('td', { text: a.action }),
        el('td', { class: 'reason', text: a.reason }),
        el('td', { text: until(Date.parse(a.deadline)), title: a.deadline }),
        el('td', {}, [el('code', { text: a.id })]),
        el('td', { class: 'answer' }, [approve, ' ', deny, ' ', reason]),
      ]);
    }));
  }

  function eventsQuery() {
    const q = new URLSearchParams();
    const c = $('f-container').value.trim();
    if (c) q.set('container', c);
    if ($('f-type').value) q.set('type', $('f-type').value);
    if ($('f-status').value) q.set('status', $('f-status').value);
    const s = q.toString();
    return 'api/events' + (s ? '?' + s : '');
  }

  function renderHosts(hosts) {
    $('hosts').replaceChildren(...hosts.map((h) => {
      const seen = typeof h.last_seen_ms === 'number' ? 'last heartbeat ' + ago(h.last_seen_ms) : 'no heartbeat recorded';
      return el('span', {
        class: 'host ' + (h.alive ? 'alive' : 'missing'),
        'data-host': h.host,
        title: seen + (h.version ? ' · collector ' + h.version : ''),
      }, [h.host + ' · ' + (h.alive ? h.containers + ' containers' : 'collector missing')]);
    }));
  }

  function meter(label, value, kind) {
    const fill = el('div', { class: 'fill' + (kind === 'mem' ? ' mem' : '') + (value >= 85 ? ' hot' : '') });
    fill.style.width = (typeof value === 'number' ? Math.min(100, Math.max(0, value)) : 0) + '%';
    return el('div', { class: 'meter' }, [el('span', { text: label }), el('div', { class: 'bar' }, [fill]), el('span', { class: 'val', text: pct(value) })]);
  }

  function renderGrid(view) {
    state.containers = view.containers;
    $('container-count').textContent = view.truncated ? view.containers.length + ' of ' + view.total : String(view.total);
    $('grid-empty').hidden = view.containers.length > 0;
    if (!state.selected || !view.containers.some((c) => c.key === state.selected)) {
      const first = view.containers.find((c) => c.status === 'running') || view.containers[0];
      state.selected = first ? first.key : null;
    }
    $('grid').replaceChildren(...view.containers.map((c) => {
      const health = c.health ? [' · ', c.health] : [];
      const fixes = c.remediation && typeof c.remediation.count === 'number' ? ' · fixed ' + c.remediation.count + '× this hour' : '';
      const card = el('div', {
        class: 'card ' + cls(c.status) + ' ' + cls(c.health) + (c.key === state.selected ? ' selected' : ''),
        tabindex: '0',
        'data-container': c.key,
        'data-status': c.status,
        title: (c.image ? c.image + ' · ' : '') + (c.updated ? 'stats ' + c.updated + ' UTC' : 'no stats'),
      }, [
        el('div', { class: 'card-head' }, [el('span', { class: 'name', text: c.name, title: c.key }), el('span', { class: 'badge ' + cls(c.status), text: c.status })]),
        el('div', { class: 'sub' }, [c.host, c.host_alive ? '' : ' (collector missing)', ...health, fixes]),
        meter('CPU', c.cpu_pct, 'cpu'),
        meter('Mem', c.memory_pct, 'mem'),
        flags(c),
      ]);
      if (c.silenced) card.classList.add('silenced');
      if (c.breaker) card.classList.add('breaker');
      const select = () => { state.selected = c.key; kick(); };
      card.addEventListener('click', select);
      card.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(); } });
      return card;
    }));
  }

  // Why HemoStat leaves a container alone: the silence that holds for it
  // and its open circuit breaker, each with its reason (as text).
  function flags(c) {
    const kids = [];
    if (c.silenced) {
      const s = c.silenced;
      kids.push(el('div', { class: 'flag silenced', 'data-silence': s.id, title: 'silence ' + s.id + ' on ' + s.target + ' by ' + s.by + ' until ' + s.until }, [
        el('span', { class: 'badge silenced', text: 'silenced' }), ' ', el('span', { class: 'reason', text: s.reason }), ' · until ' + until(s.until_ms)]));
    }
    if (c.breaker) {
      const b = c.breaker;
      const left = typeof b.seconds_left === 'number' ? ' · closes in ' + duration(b.seconds_left) : '';
      kids.push(el('div', { class: 'flag breaker', title: b.reason + left }, [
        el('span', { class: 'badge breaker', text: 'breaker open' }), ' ', el('span', { class: 'reason', text: b.reason }), left]));
    }
    return kids.length ? el('div', { class: 'flags' }, kids) : null;
  }

  function renderSilences(view) {
    $('silence-count').textContent = String(view.silences.length);
    $('silences-empty').hidden = view.silences.length > 0;
    $('silences').replaceChildren(...view.silences.map((s) => el('tr', { 'data-silence': s.id, 'data-kind': s.kind, 'data-target': s.target_text }, [
      el('td', {}, [s.target_text]),
      el('td', { class: 'reason', text: s.reason }),
      el('td', { text: s.by }),
      el('td', { text: until(s.until_ms), title: s.until }),
      el('td', { class: 'left', text: duration(s.seconds_left) + ' left' }),
      el('td', {}, [el('code', { text: s.id })]),
    ])));
    // Maintenance windows: the open one's end, else the next one's start.
    const windows = view.windows || [];
    $('window-count').textContent = String(windows.length);
    $('windows-empty').hidden = windows.length > 0;
    $('windows').replaceChildren(...windows.map((w) => el('tr', { 'data-window': w.id, 'data-open': String(w.open), 'data-target': w.target_text }, [
      el('td', {}, [w.target_text]),
      el('td', { class: 'reason', text: w.reason }),
      el('td', { text: w.schedule }),
      el('td', { class: 'left', title: w.next_start + ' to ' + w.next_end,
        text: w.open ? 'open until ' + until(w.next_end_ms) + ' (' + duration(w.seconds_to_change) + ' left)'
          : until(w.next_start_ms) + ' to ' + until(w.next_end_ms) + ' (in ' + duration(w.seconds_to_change) + ')' }),
      el('td', { text: w.by }),
      el('td', {}, [el('code', { text: w.id })]),
    ])));
  }

  // The analyzer's diagnosis: cause and summary, recommendation, and the
  // evidence lines verbatim (text nodes: a log line is never markup).
  function diagnosis(d) {
    if (!d) return null;
    const kids = [el('div', { class: 'cause' }, [el('span', { class: 'badge cause', text: d.cause }), d.summary ? ' ' + d.summary : null])];
    if (d.recommendation) kids.push(el('div', { class: 'recommendation', text: '→ ' + d.recommendation }));
    if (d.evidence && d.evidence.length) kids.push(el('pre', { class: 'evidence', text: d.evidence.join('\n') }));
    return el('div', { class: 'diagnosis' }, kids);
  }

  function renderIssues(view) {
    $('issue-count').textContent = String(view.issues.length);
    $('issues-empty').hidden = view.issues.length > 0;
    $('issues').replaceChildren(...view.issues.map((i) => {
      const a = i.last_attempt;
      const attempt = a ? [el('span', { class: 'badge ' + cls(a.status), text: a.status || '?' }), ' ', (a.action || '') + (a.reason ? ': ' + a.reason : '')] : ['pending'];
      return el('tr', { 'data-container': i.key }, [
        el('td', { text: i.key }),
        el('td', { text: i.issues.join('; ') || i.anomalies.join(', ') }),
        el('td', {}, [el('span', { class: 'badge ' + cls(i.severity), text: i.severity || '–' })]),
        el('td', { text: ago(i.last_seen_ms), title: new Date(i.last_seen_ms).toLocaleString() }),
        el('td', { text: i.alerts }),
        el('td', {}, attempt),
        el('td', {}, [diagnosis(i.diagnosis)]),
      ]);
    }));
  }

  const identity = (e) => e.timestamp + '|' + e.type + '|' + e.key + '|' + (e.status || '');

  function renderEvents(view) {
    state.events = view.events;
    $('event-count').textContent = String(view.events.length);
    $('events-empty').hidden = view.events.length > 0;
    $('events').replaceChildren(...view.events.map((e) => {
      const d = seedTime(e.timestamp);
      const row = el('tr', {
        class: identity(e) === state.selectedEvent ? 'selected' : '',
        'data-container': e.key,
        'data-type': e.type,
        'data-action': e.action || '',
        'data-status': e.status || '',
      }, [
        el('td', { text: clock(d) || e.timestamp, title: e.timestamp + ' UTC' }),
        el('td', { text: e.key }),
        el('td', { text: e.type }),
        el('td', { text: e.action || '' }),
        el('td', {}, e.status ? [el('span', { class: 'badge ' + cls(e.status), text: e.status })] : []),
        el('td', {}, [e.summary, diagnosis(e.diagnosis)]),
      ]);
      row.addEventListener('click', () => { state.selectedEvent = identity(e); showDetails(e); renderEvents({ events: state.events }); });
      return row;
    }));
    if (state.selectedEvent) {
      const still = view.events.find((e) => identity(e) === state.selectedEvent);
      if (still) showDetails(still);
    }
  }

  function showDetails(e) {
    $('details').hidden = false;
    $('details-body').textContent = JSON.stringify({ timestamp: e.timestamp, agent: e.agent, type: e.type, data: e.data }, null, 2);
  }

  function chart(svg, samples, field, cls_) {
    const w = 300, h = 80;
    const values = samples.map((s) => s[field]);
    // Scaled to the data (an idle container's 0.3 % would be a flat line on
    // a 0-100 scale), at least 0-5 %.
    const max = Math.max(5, ...values) * 1.1;
    const t0 = samples.length ? samples[0].t : 0;
    const span = samples.length > 1 ? samples[samples.length - 1].t - t0 : 1;
    const kids = [0.25, 0.5, 0.75].map((f) => {
      const y = h - f * h;
      const l = document.createElementNS(SVG, 'line');
      l.setAttribute('class', 'grid-line');
      l.setAttribute('x1', '0'); l.setAttribute('x2', String(w));
      l.setAttribute('y1', y.toFixed(1)); l.setAttribute('y2', y.toFixed(1));
      return l;
    });
    if (samples.length) {
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('class', cls_);
      const pts = samples.map((s) => {
        const x = samples.length > 1 ? ((s.t - t0) / span) * w : w;
        const y = h - (Math.max(0, s[field]) / max) * h;
        return x.toFixed(1) + ',' + y.toFixed(1);
      });
      line.setAttribute('points', pts.join(' '));
      kids.push(line);
    }
    svg.setAttribute('data-points', String(samples.length));
    svg.setAttribute('data-scale', max.toFixed(1));
    svg.replaceChildren(...kids);
  }

  function renderSeries(view) {
    $('chart-title').textContent = view ? view.key : '';
    const samples = view ? view.samples : [];
    chart($('chart-cpu'), samples, 'cpu', 'line-cpu');
    chart($('chart-mem'), samples, 'mem', 'line-mem');
    const last = samples[samples.length - 1];
    const scale = (id) => ' (scale 0-' + $(id).dataset.scale + ')';
    $('cpu-now').textContent = last ? pct(last.cpu) + scale('chart-cpu') : '';
    $('mem-now').textContent = last ? pct(last.mem) + scale('chart-mem') : '';
  }

  function seriesPath(key) {
    const at = key.indexOf('/');
    return 'api/series/' + encodeURIComponent(key.slice(0, at)) + '/' + encodeURIComponent(key.slice(at + 1));
  }

  async function refresh() {
    if (state.running) { state.again = true; return; }
    state.running = true;
    clearTimeout(state.timer);
    try {
      const [containers, issues, events, silences, approvals] = await Promise.all([getJson('api/containers'), getJson('api/issues'), getJson(eventsQuery()), getJson('api/silences'), getJson('api/approvals')]);
      renderApprovals(approvals);
      renderHosts(containers.hosts);
      renderGrid(containers);
      renderSilences(silences);
      renderIssues(issues);
      renderEvents(events);
      renderSeries(state.selected ? await getJson(seriesPath(state.selected)) : null);
      $('status').className = 'status';
      $('status').textContent = 'updated ' + new Date().toLocaleTimeString() + ' · every ' + refreshMs / 1000 + ' s';
    } catch (err) {
      // Keep the last data on screen; say what failed.
      $('status').className = 'status error';
      $('status').textContent = 'update failed: ' + (err && err.message ? err.message : String(err));
    } finally {
      state.running = false;
      if (state.again) { state.again = false; setTimeout(refresh, 0); } else { state.timer = setTimeout(refresh, refreshMs); }
    }
  }

  // A user's action refreshes now rather than at the next tick.
  function kick() { refresh(); }

  let typing = null;
  $('f-container').addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(kick, 300); });
  $('f-type').addEventListener('change', kick);
  $('f-status').addEventListener('change', kick);
  $('filters').addEventListener('submit', (e) => { e.preventDefault(); kick(); });
  $('details-close').addEventListener('click', () => { state.selectedEvent = null; $('details').hidden = true; renderEvents({ events: state.events }); });
  refresh();
})();
