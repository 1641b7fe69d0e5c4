// ProxyGate dashboard: polls GET /admin/stats on this origin and draws it. No framework, no
// build step; every node is made with createElement/textContent (nothing from the server is
// ever parsed as HTML).
'use strict';

(() => {
  const POLL_MS = 2000;
  const KEY_STORE = 'proxygate.masterKey';
  const THEME_STORE = 'proxygate.theme';
  const WINDOW_STORE = 'proxygate.window';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#818cf8', '#2dd4bf', '#e879f9', '#a3e635', '#38bdf8', '#fda4af', '#c084fc', '#fcd34d', '#5eead4', '#93c5fd'];

  const state = {
    window: localStorage.getItem(WINDOW_STORE) || '5m',
    data: null,
    timer: 0,
    inflight: false,
    busy: new Set(), // deployments being reset
  };

  // ---------- tiny DOM helpers ----------
  const $ = (sel, root = document) => root.querySelector(sel);
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined) n.append(kid);
    return n;
  }
  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') n.textContent = v;
      else n.setAttribute(k, String(v));
    }
    for (const kid of kids.flat()) if (kid) n.append(kid);
    return n;
  }

  // ---------- formatting ----------
  const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  function compact(n) {
    if (n === null || n === undefined) return '–';
    const a = Math.abs(n);
    if (a >= 1e9) return nf1.format(n / 1e9) + 'B';
    if (a >= 1e6) return nf1.format(n / 1e6) + 'M';
    if (a >= 1e4) return nf1.format(n / 1e3) + 'k';
    return nf0.format(n);
  }
  function rate(n) { return n >= 100 ? nf0.format(n) : n >= 10 ? nf1.format(n) : nf2.format(n); }
  function ms(v) {
    if (v === null || v === undefined) return ['–', ''];
    if (v >= 10000) return [nf1.format(v / 1000), 's'];
    if (v >= 1000) return [nf2.format(v / 1000), 's'];
    if (v >= 100) return [nf0.format(v), 'ms'];
    if (v >= 10) return [nf1.format(v), 'ms'];
    return [nf2.format(v), 'ms'];
  }
  const msText = (v) => { const [a, b] = ms(v); return b ? `${a} ${b}` : a; };
  function usd(v) {
    if (!v) return '$0';
    if (v < 0.0001) return '<$0.0001';
    if (v < 0.01) return '$' + v.toFixed(4);
    if (v < 100) return '$' + v.toFixed(2);
    return '$' + nf0.format(v);
  }
  function pct(x) { return x === 0 ? '0' : x < 0.001 ? '<0.1' : nf1.format(x * 100); }
  function clock(tsMs, withSeconds = true) {
    return new Date(tsMs).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: withSeconds ? '2-digit' : undefined, hour12: false });
  }
  function ago(tsMs, now) {
    const s = Math.max(0, Math.round((now - tsMs) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    return `${Math.floor(s / 3600)}h ago`;
  }
  // A provider keeps its colour for the life of the page: well-known ones have their own, others
  // take the next palette colour not yet in use.
  const COLORS = new Map(Object.entries({
    mock: '#a78bfa', openai: '#34d399', anthropic: '#f59e0b', groq: '#fb923c', gemini: '#60a5fa',
    cerebras: '#f472b6', together: '#22d3ee', mistral: '#facc15', none: '#f87171', other: '#94a3b8',
  }));
  function colorOf(name) {
    const key = String(name);
    if (!COLORS.has(key)) {
      const used = new Set(COLORS.values());
      COLORS.set(key, PALETTE.find((c) => !used.has(c)) || PALETTE[COLORS.size % PALETTE.length]);
    }
    return COLORS.get(key);
  }

  // ---------- theme ----------
  function applyTheme(t) {
    document.documentElement.dataset.theme = t;
    const other = t === 'dark' ? 'light' : 'dark';
    const b = $('#theme');
    b.setAttribute('aria-label', `Switch to ${other} theme`);
    b.title = `Switch to ${other} theme`;
    const meta = document.querySelector('meta[name="theme-color"]');
    if (meta) meta.content = t === 'dark' ? '#0b0f17' : '#f5f7fb';
  }

  // ---------- auth ----------
  const getKey = () => sessionStorage.getItem(KEY_STORE);
  function headers() {
    const k = getKey();
    return k ? { Authorization: `Bearer ${k}` } : {};
  }
  function askForKey(message) {
    const dlg = $('#key-dialog');
    const err = $('#key-error');
    err.hidden = !message;
    err.textContent = message || '';
    setLive('locked', 'Locked');
    if (!dlg.open) {
      dlg.showModal();
      $('#key-input').value = '';
    }
    $('#key-input').focus();
  }

  // ---------- status pill / toast ----------
  function setLive(kind, text) {
    const live = $('#live');
    live.dataset.state = kind;
    $('#live-text').textContent = text;
  }
  let toastTimer = 0;
  function toast(text) {
    const t = $('#toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 3200);
  }

  // ---------- polling ----------
  function schedule(delay = POLL_MS) {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, delay);
  }
  async function poll() {
    if (state.inflight) return;
    if (document.hidden) { schedule(); return; }
    state.inflight = true;
    try {
      const resp = await fetch(`/admin/stats?window=${encodeURIComponent(state.window)}&recent=60`, {
        headers: headers(), cache: 'no-store',
      });
      if (resp.status === 401) {
        const hadKey = !!getKey();
        sessionStorage.removeItem(KEY_STORE);
        $('#lock').hidden = true;
        askForKey(hadKey ? 'That key was refused by the gateway.' : '');
        return;
      }
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const data = await resp.json();
      state.data = data;
      $('#lock').hidden = !getKey();
      render(data);
      setLive('live', `Live · ${clock(data.now_ms)}`);
      schedule();
    } catch (e) {
      setLive('offline', state.data ? `Offline · last ${clock(state.data.now_ms)}` : 'Gateway unreachable');
      schedule(POLL_MS * 2);
    } finally {
      state.inflight = false;
    }
  }

  // ---------- rendering ----------
  function render(d) {
    renderKpis(d);
    renderRequests(d);
    renderLatency(d);
    renderProviders(d);
    renderModels(d);
    renderShare(d);
    renderRecent(d);
    const up = Math.max(0, Math.round((d.now_ms - d.lifetime.since_ms) / 1000));
    const upText = up < 3600 ? `${Math.floor(up / 60)}m ${up % 60}s` : `${Math.floor(up / 3600)}h ${Math.floor((up % 3600) / 60)}m`;
    $('#foot').textContent = `ProxyGate ${d.version} · up ${upText} · ${compact(d.lifetime.requests)} requests, ${usd(d.lifetime.cost_usd)} since start · refreshes every ${POLL_MS / 1000}s`;
  }

  function setKpi(id, value, unit, sub, opts = {}) {
    const k = $(`#${id}`);
    $('[data-v]', k).textContent = value;
    const u = $('[data-u]', k);
    if (u && unit !== undefined) u.textContent = unit;
    const s = $('[data-sub]', k);
    s.replaceChildren(...(Array.isArray(sub) ? sub : [sub]));
    k.classList.toggle('bad', !!opts.bad);
    const sp = $('[data-spark]', k);
    if (sp && opts.spark) spark(sp, opts.spark);
  }

  function renderKpis(d) {
    const t = d.totals;
    const s = d.series;
    const w = d.window;
    const perSec = s.requests.map((n) => n / s.step_secs);
    setKpi('kpi-rps', rate(t.rps), undefined, [el('b', { text: compact(t.requests) }), ` requests in ${w}`], { spark: perSec });
    const errSeries = s.requests.map((n, i) => (n ? s.errors[i] / n : 0));
    setKpi('kpi-errors', pct(t.error_rate), undefined,
      [el('b', { text: compact(t.errors) }), ` failed of ${compact(t.requests)}`],
      { bad: t.error_rate >= 0.05, spark: errSeries });
    const l = d.latency_ms;
    const [lv, lu] = ms(l.p50);
    setKpi('kpi-latency', lv, lu || 'ms', [
      'p95 ', el('b', { text: msText(l.p95) }), ' · p99 ', el('b', { text: msText(l.p99) }),
    ], { spark: s.latency_avg_ms.map((v) => v || 0) });
    const f = d.ttft_ms;
    const [fv, fu] = ms(f.p50);
    setKpi('kpi-ttft', fv, fu || 'ms', f.count
      ? ['p95 ', el('b', { text: msText(f.p95) }), ' · p99 ', el('b', { text: msText(f.p99) })]
      : 'no streams in this window');
    const prompt = d.by_provider.reduce((a, r) => a + r.prompt_tokens, 0);
    const completion = d.by_provider.reduce((a, r) => a + r.completion_tokens, 0);
    setKpi('kpi-tokens', compact(t.tokens), undefined,
      [el('b', { text: compact(prompt) }), ' in · ', el('b', { text: compact(completion) }), ' out'],
      { spark: s.tokens });
    const perHour = t.rps > 0 && t.requests ? (t.cost_usd / t.requests) * t.rps * 3600 : 0;
    setKpi('kpi-cost', usd(t.cost_usd), undefined,
      perHour ? ['≈ ', el('b', { text: usd(perHour) }), '/h at this rate'] : `in the last ${w}`,
      { spark: s.cost_usd });
  }

  function spark(node, values) {
    const w = node.clientWidth || 200;
    const h = node.clientHeight || 38;
    const max = Math.max(...values, 0);
    node.setAttribute('viewBox', `0 0 ${w} ${h}`);
    node.setAttribute('preserveAspectRatio', 'none');
    if (!values.length || max <= 0) { node.replaceChildren(); return; }
    const step = w / Math.max(1, values.length - 1);
    const y = (v) => h - 2 - (v / max) * (h - 6);
    let line = '';
    values.forEach((v, i) => { line += `${i ? 'L' : 'M'}${(i * step).toFixed(1)},${y(v).toFixed(1)}`; });
    node.replaceChildren(
      svg('path', { class: 'area', d: `${line}L${w},${h}L0,${h}Z` }),
      svg('path', { class: 'stroke', d: line }),
    );
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // A frame with y grid lines and x time labels; returns helpers to place data.
  function frame(container, yMax, fmtY, d) {
    const W = container.clientWidth || 600;
    const H = container.clientHeight || 210;
    const pad = { l: 46, r: 10, t: 10, b: 22 };
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
    const grid = svg('g', { class: 'grid' });
    const axis = svg('g', { class: 'axis' });
    const iw = W - pad.l - pad.r;
    const ih = H - pad.t - pad.b;
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      const y = pad.t + ih - (ih * i) / 4;
      grid.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
      axis.append(svg('text', { x: pad.l - 8, y: y + 4, 'text-anchor': 'end', text: fmtY(v) }));
    }
    const s = d.series;
    const n = s.requests.length;
    const span = n * s.step_secs * 1000;
    const ticks = W < 520 ? 2 : 4; // time labels that fit
    for (let i = 0; i <= ticks; i++) {
      const x = pad.l + (iw * i) / ticks;
      const t = s.start_ms + (span * i) / ticks;
      const anchor = i === 0 ? 'start' : i === ticks ? 'end' : 'middle';
      axis.append(svg('text', { x, y: H - 6, 'text-anchor': anchor, text: i === ticks ? 'now' : clock(t, s.step_secs < 15) }));
    }
    root.append(grid, axis);
    return { root, pad, iw, ih, n, W, H, x: (i) => pad.l + (iw * i) / n, y: (v) => pad.t + ih - (ih * v) / yMax };
  }

  function emptyNote(f, text) {
    f.root.append(svg('text', { class: 'empty', x: f.pad.l + f.iw / 2, y: f.pad.t + f.ih / 2, 'text-anchor': 'middle', text }));
  }

  function renderRequests(d) {
    const c = $('#chart-requests');
    const s = d.series;
    const perSec = (n) => n / s.step_secs;
    const max = Math.max(...s.requests.map(perSec), 0);
    const f = frame(c, niceMax(max), (v) => (v ? rate(v) + '/s' : '0'), d);
    const bw = f.iw / f.n;
    const g = svg('g');
    s.requests.forEach((n, i) => {
      const err = s.errors[i];
      const ok = n - err;
      const x = f.x(i) + bw * 0.14;
      const w = Math.max(1, bw * 0.72);
      const yOk = f.y(perSec(ok));
      const yAll = f.y(perSec(n));
      if (ok > 0) g.append(svg('rect', { class: 'ok', x, y: yOk, width: w, height: f.y(0) - yOk, rx: Math.min(2, w / 3) }));
      if (err > 0) g.append(svg('rect', { class: 'err', x, y: yAll, width: w, height: yOk - yAll, rx: Math.min(2, w / 3) }));
      const hit = svg('rect', { class: 'hit', x: f.x(i), y: f.pad.t, width: bw, height: f.ih });
      hit.append(svg('title', { text: `${clock(s.start_ms + i * s.step_secs * 1000)} · ${n} requests (${err} failed) · ${rate(perSec(n))}/s` }));
      g.append(hit);
    });
    f.root.append(g);
    if (!max) emptyNote(f, 'No requests in this window yet');
    c.replaceChildren(f.root);
  }

  function renderLatency(d) {
    const c = $('#chart-latency');
    const s = d.series;
    const vals = s.latency_avg_ms;
    const p95 = d.latency_ms.p95;
    const max = Math.max(...vals.map((v) => v || 0), p95 || 0);
    const f = frame(c, niceMax(max * 1.1), (v) => (v ? msText(v).replace(' ', '') : '0'), d);
    const bw = f.iw / f.n;
    let line = '';
    let area = '';
    let run = [];
    const flush = () => {
      if (!run.length) return;
      const pts = run.map(([i, v]) => [f.x(i) + bw / 2, f.y(v)]);
      const seg = pts.map(([x, y], j) => `${j ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
      line += seg;
      area += `${seg}L${pts[pts.length - 1][0].toFixed(1)},${f.y(0)}L${pts[0][0].toFixed(1)},${f.y(0)}Z`;
      run = [];
    };
    vals.forEach((v, i) => { if (v === null) flush(); else run.push([i, v]); });
    flush();
    const g = svg('g');
    if (area) g.append(svg('path', { class: 'lat-area', d: area }), svg('path', { class: 'lat', d: line }));
    // A point with no neighbour draws no line: mark it.
    vals.forEach((v, i) => {
      if (v === null || (i > 0 && vals[i - 1] !== null) || (i + 1 < vals.length && vals[i + 1] !== null)) return;
      g.append(svg('circle', { class: 'lat-dot', cx: f.x(i) + bw / 2, cy: f.y(v), r: 3 }));
    });
    vals.forEach((v, i) => {
      if (v === null) return;
      const hit = svg('rect', { class: 'hit', x: f.x(i), y: f.pad.t, width: bw, height: f.ih });
      hit.append(svg('title', { text: `${clock(s.start_ms + i * s.step_secs * 1000)} · mean ${msText(v)}` }));
      g.append(hit);
    });
    if (p95) {
      const y = f.y(p95);
      g.append(svg('line', { class: 'p95', x1: f.pad.l, x2: f.W - f.pad.r, y1: y, y2: y }));
      g.append(svg('text', { class: 'p95', x: f.W - f.pad.r - 4, y: y - 5, 'text-anchor': 'end', text: `p95 ${msText(p95)}` }));
    }
    f.root.append(g);
    if (!max) emptyNote(f, 'No successful requests in this window yet');
    c.replaceChildren(f.root);
  }

  function circuitLabel(st) {
    return { closed: 'Closed', open: 'Open', half_open: 'Half-open' }[st] || st;
  }

  async function resetCircuit(id) {
    state.busy.add(id);
    if (state.data) renderProviders(state.data);
    try {
      const path = id.split('/').map(encodeURIComponent).join('/');
      const resp = await fetch(`/admin/circuits/${path}/reset`, { method: 'POST', headers: headers() });
      if (resp.status === 401) { askForKey('The gateway asked for the key again.'); return; }
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      toast(`Circuit of ${id} reset`);
    } catch (e) {
      toast(`Could not reset ${id}: ${e.message}`);
    } finally {
      state.busy.delete(id);
      schedule(0);
    }
  }

  function renderProviders(d) {
    const box = $('#providers');
    // A provider's traffic: what it served, plus what failed on one of its models (served by none).
    const usage = new Map();
    for (const r of d.by_model) {
      const name = r.provider === 'none' ? r.model.split('/')[0] : r.provider;
      const u = usage.get(name) || { requests: 0, errors: 0, cost_usd: 0 };
      u.requests += r.requests;
      u.errors += r.errors;
      u.cost_usd += r.cost_usd;
      usage.set(name, u);
    }
    let open = 0;
    let total = 0;
    const order = { open: 0, degraded: 1, healthy: 2 };
    const provs = [...d.providers].sort((a, b) => (order[a.status] - order[b.status]) || a.name.localeCompare(b.name));
    const cards = provs.map((p) => {
      const deps = [...p.deployments].sort((a, b) => (a.state === 'closed') - (b.state === 'closed') || a.model.localeCompare(b.model));
      total += deps.length;
      open += deps.filter((x) => x.state !== 'closed').length;
      const u = usage.get(p.name);
      const items = deps.map((dep) => {
        const meta = [];
        if (dep.state === 'open' && dep.next_probe_in_ms !== null) meta.push(dep.next_probe_in_ms > 0 ? `probe in ${Math.ceil(dep.next_probe_in_ms / 1000)}s` : 'probe due');
        if (dep.consecutive_failures) meta.push(`${dep.consecutive_failures} failure${dep.consecutive_failures === 1 ? '' : 's'}`);
        if (dep.cooling_for_ms) meta.push(`cooling ${Math.ceil(dep.cooling_for_ms / 1000)}s`);
        if (dep.latency_ms !== null && dep.latency_ms !== undefined) meta.push(`~${msText(dep.latency_ms)}`);
        const busy = state.busy.has(dep.deployment);
        const closed = dep.state === 'closed' && !dep.consecutive_failures && !dep.cooling_for_ms;
        return el('li', { class: 'dep', 'data-deployment': dep.deployment, 'data-state': dep.state },
          el('span', { class: `badge ${dep.state}`, text: circuitLabel(dep.state) }),
          el('div', { class: 'dep-main' },
            el('div', { class: 'dep-model', title: dep.deployment, text: dep.model }),
            meta.length ? el('div', { class: 'dep-meta', text: meta.join(' · ') }) : null),
          el('button', {
            type: 'button', class: `btn ${closed ? '' : 'danger'}`, disabled: busy || closed,
            'data-reset': dep.deployment, title: `Close the circuit of ${dep.deployment}`,
            onclick: () => resetCircuit(dep.deployment), text: busy ? 'Resetting…' : 'Reset',
          }));
      });
      const stats = u
        ? `${compact(u.requests)} req${u.errors ? ` · ${compact(u.errors)} failed` : ''} · ${usd(u.cost_usd)}`
        : `no traffic in ${d.window}`;
      return el('div', { class: `provider is-${p.status}`, 'data-provider': p.name },
        el('div', { class: 'prov-head' },
          el('span', { class: 'dot', 'data-color': p.name }),
          el('span', { class: 'prov-name', text: p.name }),
          el('span', { class: 'tier', text: p.tier }),
          el('span', { class: 'spacer' }),
          el('span', { class: 'prov-stats', text: stats }),
          el('span', { class: `badge ${p.status}`, text: p.status === 'healthy' ? 'Healthy' : p.status === 'open' ? 'Down' : 'Degraded' })),
        el('ul', { class: 'deps' }, items));
    });
    box.replaceChildren(...cards);
    paintDots(box);
    $('#circuit-summary').textContent = total
      ? (open ? `${open} of ${total} circuits not closed` : `All ${total} circuits closed`)
      : 'No provider configured';
  }

  // Colours are set through the CSSOM (the CSP allows no inline style attributes).
  function paintDots(root) {
    for (const n of root.querySelectorAll('[data-color]')) n.style.background = colorOf(n.dataset.color);
  }

  function renderModels(d) {
    const box = $('#models');
    const rows = d.by_model;
    $('#models-note').textContent = rows.length ? `${rows.length} model${rows.length === 1 ? '' : 's'} in ${d.window}` : '';
    if (!rows.length) {
      box.replaceChildren(el('p', { class: 'muted', text: 'No traffic in this window yet.' }));
      return;
    }
    const maxTok = Math.max(...rows.map((r) => r.prompt_tokens + r.completion_tokens), 1);
    const head = el('div', { class: 'mrow head' },
      el('span', { text: 'Model' }), el('span', { text: 'Tokens (in / out)' }),
      el('span', { class: 'num', text: 'Tokens' }), el('span', { class: 'num', text: 'Cost' }), el('span', { class: 'num', text: 'Requests' }));
    const list = rows.slice(0, 12).map((r) => {
      const tok = r.prompt_tokens + r.completion_tokens;
      const color = colorOf(r.provider);
      const inBar = el('i', { class: 'in' });
      const outBar = el('i');
      inBar.style.width = `${(r.prompt_tokens / maxTok) * 100}%`;
      outBar.style.width = `${(r.completion_tokens / maxTok) * 100}%`;
      inBar.style.background = color;
      outBar.style.background = color;
      const req = el('span', { class: 'num' }, compact(r.requests));
      if (r.errors) req.append(el('span', { class: 'err', text: ` (${compact(r.errors)}✕)` }));
      return el('div', { class: 'mrow', 'data-model': r.model },
        el('span', { class: 'mname' }, el('span', { class: 'dot', 'data-color': r.provider }), el('span', { title: r.model, text: r.model })),
        el('div', { class: 'bar', title: `${compact(r.prompt_tokens)} in / ${compact(r.completion_tokens)} out` }, inBar, outBar),
        el('span', { class: 'num', text: compact(tok) }),
        el('span', { class: 'num', text: usd(r.cost_usd) }),
        req);
    });
    box.replaceChildren(el('div', { class: 'models' }, head, list));
    paintDots(box);
  }

  function renderShare(d) {
    const box = $('#by-provider');
    const rows = d.by_provider.filter((r) => r.requests > 0);
    const total = rows.reduce((a, r) => a + r.requests, 0);
    const R = 60;
    const C = 2 * Math.PI * R;
    const ring = svg('svg', { viewBox: '0 0 150 150' },
      svg('circle', { class: 'track', cx: 75, cy: 75, r: R, fill: 'none', 'stroke-width': 16 }));
    let off = 0;
    for (const r of rows) {
      const len = (r.requests / total) * C;
      const arc = svg('circle', {
        cx: 75, cy: 75, r: R, fill: 'none', stroke: colorOf(r.provider), 'stroke-width': 16,
        'stroke-dasharray': `${Math.max(0, len - (rows.length > 1 ? 2 : 0))} ${C}`,
        'stroke-dashoffset': -off, transform: 'rotate(-90 75 75)',
      });
      arc.append(svg('title', { text: `${r.provider}: ${r.requests} requests` }));
      ring.append(arc);
      off += len;
    }
    ring.append(
      svg('text', { class: 'center-num', x: 75, y: 76, 'text-anchor': 'middle', text: compact(total) }),
      svg('text', { class: 'center-lbl', x: 75, y: 94, 'text-anchor': 'middle', text: 'requests' }));
    const items = rows.length
      ? rows.map((r) => el('li', {},
        el('span', { class: 'dot', 'data-color': r.provider }),
        el('span', { text: r.provider === 'none' ? 'unserved' : r.provider, title: r.provider === 'none' ? 'requests no provider answered' : r.provider }),
        el('span', { class: 'num', text: `${nf0.format((r.requests / total) * 100)}%` }),
        el('span', { class: 'num', text: usd(r.cost_usd) })))
      : [el('li', { class: 'muted', text: 'No traffic in this window yet.' })];
    box.replaceChildren(ring, el('ul', {}, items));
    paintDots(box);
  }

  function renderRecent(d) {
    const body = $('#recent tbody');
    const rows = d.recent;
    $('#recent-note').textContent = rows.length ? `last ${rows.length} · newest ${ago(rows[0].ts_ms, d.now_ms)}` : '';
    if (!rows.length) {
      body.replaceChildren(el('tr', { class: 'empty-row' }, el('td', { colspan: 10, text: 'No requests yet. Send one to /v1/chat/completions.' })));
      return;
    }
    body.replaceChildren(...rows.map((r) => {
      const cls = r.status >= 500 ? 's5' : r.status === 499 ? 's0' : r.status >= 400 ? 's4' : 's2';
      const tags = [];
      if (r.stream) tags.push(el('span', { class: 'tag', text: 'stream' }));
      if (r.cache_hit) tags.push(el('span', { class: 'tag', text: 'cache' }));
      return el('tr', { 'data-status': r.status, title: r.request_id ? `request ${r.request_id}` : undefined },
        el('td', { class: 'muted', text: clock(r.ts_ms) }),
        el('td', {}, el('span', { class: `status ${cls}`, text: String(r.status) })),
        el('td', { class: 'model', title: r.model, text: r.model }),
        el('td', { text: r.provider === 'none' ? '—' : r.provider }),
        el('td', { class: 'r', text: msText(r.latency_ms) }),
        el('td', { class: 'r', text: r.ttft_ms === null ? '—' : msText(r.ttft_ms) }),
        el('td', { class: 'r', text: r.prompt_tokens + r.completion_tokens ? `${compact(r.prompt_tokens)} → ${compact(r.completion_tokens)}` : '—' }),
        el('td', { class: 'r', text: usd(r.cost_usd) }),
        el('td', { class: 'r', text: String(r.attempts) }),
        el('td', {}, tags));
    }));
  }

  // ---------- wiring ----------
  function selectWindow(w) {
    state.window = w;
    localStorage.setItem(WINDOW_STORE, w);
    for (const b of document.querySelectorAll('#windows button')) b.setAttribute('aria-pressed', String(b.dataset.window === w));
    schedule(0);
  }

  function init() {
    applyTheme(localStorage.getItem(THEME_STORE) === 'light' ? 'light' : 'dark');
    $('#theme').addEventListener('click', () => {
      const t = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
      localStorage.setItem(THEME_STORE, t);
      applyTheme(t);
    });
    for (const b of document.querySelectorAll('#windows button')) b.addEventListener('click', () => selectWindow(b.dataset.window));
    if (![...document.querySelectorAll('#windows button')].some((b) => b.dataset.window === state.window)) state.window = '5m';
    selectWindow(state.window);
    $('#key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const k = $('#key-input').value.trim();
      if (!k) return;
      sessionStorage.setItem(KEY_STORE, k);
      $('#key-dialog').close();
      setLive('connecting', 'Connecting…');
      schedule(0);
    });
    $('#key-dialog').addEventListener('cancel', (e) => e.preventDefault());
    $('#lock').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORE);
      $('#lock').hidden = true;
      askForKey('');
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) schedule(0); });
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (state.data) render(state.data); }, 120);
    });
    if ('serviceWorker' in navigator) {
      navigator.serviceWorker.register('/dashboard/sw.js', { scope: '/dashboard' }).catch((e) => {
        console.warn('service worker not registered:', e);
      });
    }
  }

  init();
})();
