// The dashboard in headless Chromium: the built binary serves the mock and a failing
// fake groq; after some traffic the page shows the numbers and groq's open circuit, a click on
// Reset closes it, the shell is an installable PWA (manifest type, icons, service worker),
// works offline, toggles to a light theme, and never asks anything of another origin.
//
// Run by .ci/run:  (cd tests/browser && npm install --no-package-lock) && node --test tests/browser/dashboard.test.mjs
// Env: PROXYGATE_BIN (default ../../target/debug/proxygate), CHROMIUM (default /usr/bin/chromium),
//      ARTIFACTS_DIR (default ../../target/artifacts) for the screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = path.resolve(process.env.PROXYGATE_BIN || path.join(root, 'target', 'debug', 'proxygate'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(process.env.ARTIFACTS_DIR || path.join(root, 'target', 'artifacts'));
const PROVIDER_KEY = 'gsk_browser_planted_key_5d1e';
const MASTER = 'pg-browser-master-key-93b7';
const GROQ = 'groq/llama-3.1-8b-instant';
const STEP_MS = 15000; // bound on any single wait in the page

let upstream;
let upstreamHits = 0;
let openai;
const tally = { total: 0, errors: 0 }; // what the gateway answered this test's traffic
let gateway;
let gatewayLog = '';
let base;
let browser;
let context;
let page;
const requested = []; // every URL the page, its workers and the browser asked for
const pageErrors = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHealthy(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status === 200) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gateway not healthy within ${ms} ms:\n${gatewayLog}`);
}

async function chat(model, text, stream = false) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${MASTER}` },
    body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: text }] }),
  });
  await r.arrayBuffer();
  tally.total += 1;
  if (r.status >= 400 && r.status !== 499) tally.errors += 1;
  return r.status;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function shot(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  return page.screenshot({ path: file, fullPage: true }).then(() => {
    console.log(`screenshot: ${file}`);
    return file;
  });
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `no gateway binary at ${BIN} (cargo build --bin proxygate)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);

  // A groq that fails every request with a 500 whose body echoes the key it got.
  upstream = http.createServer((req, res) => {
    upstreamHits += 1;
    req.resume();
    req.on('end', () => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `upstream exploded for ${req.headers.authorization}` } }));
    });
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = upstream.address().port;

  // An OpenAI that answers after a while, with usage (so the cost is real: gpt-4o-mini's rates).
  let n = 0;
  openai = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      n += 1;
      const i = n;
      const model = JSON.parse(body || '{}').model || 'gpt-4o-mini';
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          id: `chatcmpl-${i}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
          choices: [{ index: 0, message: { role: 'assistant', content: `answer ${i}` }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 300 + ((i * 137) % 900), completion_tokens: 120 + ((i * 71) % 500), total_tokens: 0 },
        }));
      }, 90 + ((i * 53) % 260));
    });
  });
  await new Promise((r) => openai.listen(0, '127.0.0.1', r));

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-dash-')); // no .env, no proxygate.toml
  const env = { PATH: process.env.PATH, HOME: process.env.HOME || cwd };
  Object.assign(env, {
    HOST: '127.0.0.1',
    PORT: String(port),
    USAGE_DB_PATH: ':memory:',
    GROQ_BASE_URL: `http://127.0.0.1:${upPort}/openai/v1`,
    GROQ_API_KEY: PROVIDER_KEY,
    OPENAI_BASE_URL: `http://127.0.0.1:${openai.address().port}/v1`,
    OPENAI_API_KEY: 'sk-browser-planted-openai-key',
    PROXYGATE_MASTER_KEY: MASTER,
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: '2',
    CIRCUIT_BREAKER_COOLDOWN_MS: '600000',
    MOCK_LATENCY_MS: '25',
    RUST_LOG: 'warn',
  });
  gateway = spawn(BIN, [], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  gateway.stdout.on('data', (b) => { gatewayLog += b; });
  gateway.stderr.on('data', (b) => { gatewayLog += b; });
  await waitHealthy(`${base}/health`, 20000);

  // Traffic over a few seconds, in uneven rounds: the mock (some streams), a paid OpenAI model,
  // and groq, which fails twice (its circuit opens) and is then refused at once.
  const shape = [3, 5, 8, 6, 4, 7, 9, 5, 3, 6];
  for (const [round, k] of shape.entries()) {
    const calls = [];
    for (let j = 0; j < k; j++) {
      const model = j % 4 === 3 ? 'mock/lorem' : 'mock/echo';
      calls.push(chat(model, `round ${round} request ${j} ${'lorem '.repeat(j * 7)}`, j % 3 === 1).then((s) => assert.equal(s, 200)));
    }
    for (let j = 0; j < 1 + (round % 3); j++) {
      calls.push(chat(round % 2 ? 'openai/gpt-4o-mini' : 'openai/gpt-4o', `question ${round}.${j}`).then((s) => assert.equal(s, 200)));
    }
    if (round === 2 || round === 4) calls.push(chat(GROQ, 'hi').then((s) => assert.equal(s, 502)));
    if (round === 6 || round === 8) calls.push(chat(GROQ, 'hi').then((s) => assert.equal(s, 503)));
    await Promise.all(calls);
    await sleep(450);
  }
  assert.equal(upstreamHits, 2);
  assert.equal(tally.errors, 4);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Nothing of Chromium's own may reach out (the test also asserts the page never does).
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1, colorScheme: 'dark' });
  context.on('request', (r) => requested.push(r.url()));
  context.on('serviceworker', (w) => w.on('console', () => {}));
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
  await new Promise((r) => (upstream ? upstream.close(r) : r()));
  await new Promise((r) => (openai ? openai.close(r) : r()));
});

test('the page loads without the key, asks for it, and shows the numbers', async () => {
  const resp = await page.goto(`${base}/dashboard`);
  assert.equal(resp.status(), 200);
  assert.match(await page.title(), /ProxyGate/);
  assert.equal(await page.getAttribute('html', 'data-theme'), 'dark', 'dark by default');
  // Locked: the master key is asked for and kept in this tab.
  await page.waitForSelector('#key-dialog[open]');
  await page.fill('#key-input', MASTER);
  await page.click('#key-submit');
  await page.waitForSelector('#key-dialog', { state: 'hidden' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('proxygate.masterKey')), MASTER);
  await page.waitForSelector('#live[data-state="live"]');
  // Throughput, error rate, latency and tokens are numbers, not placeholders.
  await page.waitForFunction(() => document.querySelector('#kpi-rps [data-v]').textContent !== '–');
  const kpi = async (id) => (await page.textContent(`#${id} [data-v]`)).trim();
  assert.match(await kpi('kpi-rps'), /^\d/);
  assert.match(await page.textContent('#kpi-rps [data-sub]'), new RegExp(`^${tally.total} requests`));
  assert.equal(await kpi('kpi-errors'), (tally.errors / tally.total * 100).toFixed(1));
  assert.match(await kpi('kpi-cost'), /^\$0\.\d*[1-9]/, 'the OpenAI answers cost something');
  assert.match(await kpi('kpi-latency'), /^\d/);
  assert.match(await kpi('kpi-ttft'), /^\d/);
  assert.notEqual(await kpi('kpi-tokens'), '0');
  // Charts drew bars, and the tables have their rows.
  assert.ok(await page.locator('#chart-requests rect.ok').count() >= 1);
  assert.ok(await page.locator('#chart-requests rect.err').count() >= 1);
  assert.ok(await page.locator('#chart-latency path.lat').count() === 1);
  assert.equal(await page.locator('#recent tbody tr').count(), Math.min(60, tally.total));
  assert.ok(await page.locator('#recent tbody tr[data-status="503"]').count() === 2);
  for (const m of ['mock/echo', 'openai/gpt-4o-mini']) {
    assert.ok(await page.locator(`.mrow[data-model="${m}"]`).count() === 1, m);
  }
});

test('an open circuit shows, and Reset closes it', async () => {
  const dep = `li.dep[data-deployment="${GROQ}"]`;
  await page.waitForSelector(`${dep}[data-state="open"]`);
  assert.equal((await page.textContent(`${dep} .badge`)).trim(), 'Open');
  assert.equal(await page.getAttribute('.provider[data-provider="groq"]', 'class'), 'provider is-degraded');
  await page.click('#windows button[data-window="1m"]');
  await page.waitForFunction(() => document.querySelector('#kpi-rps [data-sub]').textContent.includes('in 1m'));
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('dashboard.png');
  await page.click(`${dep} button[data-reset]`);
  await page.waitForSelector(`${dep}[data-state="closed"]`);
  assert.equal((await page.textContent(`${dep} .badge`)).trim(), 'Closed');
  await page.waitForSelector('#toast', { state: 'visible' });
  const r = await fetch(`${base}/admin/circuits`, { headers: { authorization: `Bearer ${MASTER}` } });
  const circuits = (await r.json()).circuits;
  assert.equal(circuits.find((c) => c.deployment === GROQ).state, 'closed');
  await shot('dashboard-after-reset.png');
});

test('it is an installable PWA: manifest type, icons, service worker', async () => {
  const got = await page.evaluate(async () => {
    const link = document.querySelector('link[rel="manifest"]').href;
    const r = await fetch(link);
    const m = await r.json();
    const icons = [];
    for (const i of m.icons.filter((x) => x.type === 'image/png')) {
      const ir = await fetch(i.src);
      const bmp = await createImageBitmap(await ir.blob());
      icons.push({ sizes: i.sizes, type: ir.headers.get('content-type'), w: bmp.width, h: bmp.height });
    }
    const reg = await navigator.serviceWorker.ready;
    return { type: r.headers.get('content-type'), m, icons, sw: reg.active && reg.active.scriptURL, scope: reg.scope };
  });
  assert.equal(got.type, 'application/manifest+json');
  assert.ok(got.m.name);
  assert.equal(got.m.display, 'standalone');
  assert.equal(got.m.start_url, '/dashboard');
  assert.deepEqual(got.icons.map((i) => [i.sizes, i.type, i.w, i.h]), [
    ['192x192', 'image/png', 192, 192],
    ['512x512', 'image/png', 512, 512],
  ]);
  assert.equal(got.sw, `${base}/dashboard/sw.js`);
  assert.equal(got.scope, `${base}/dashboard`);
});

test('the shell works offline from the service worker', async () => {
  await page.reload();
  await page.waitForFunction(() => !!navigator.serviceWorker.controller);
  await context.setOffline(true);
  try {
    await page.reload();
    assert.match(await page.title(), /ProxyGate/);
    await page.waitForSelector('#live[data-state="offline"]');
    assert.ok(await page.locator('#windows button').count() === 4, 'the app itself ran');
  } finally {
    await context.setOffline(false);
  }
  await page.reload();
  await page.waitForSelector('#live[data-state="live"]');
});

test('the window selector and the light theme', async () => {
  await page.click('#windows button[data-window="1h"]');
  await page.waitForFunction(() => document.querySelector('#kpi-rps [data-sub]').textContent.includes('in 1h'));
  assert.equal(await page.getAttribute('#windows button[data-window="1h"]', 'aria-pressed'), 'true');
  await page.click('#windows button[data-window="5m"]');
  await page.click('#theme');
  assert.equal(await page.getAttribute('html', 'data-theme'), 'light');
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(245, 247, 251)');
  await page.waitForSelector('#live[data-state="live"]');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('dashboard-light.png');
  await page.click('#theme');
  assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
  // On a phone the page reflows without sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300); // the charts redraw after a resize settles
  const { overflow, wide } = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    wide: [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap, #models'))
      .slice(0, 8).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className.baseVal ?? e.className}`),
  }));
  assert.ok(overflow <= 0, `page wider than the phone by ${overflow}px: ${wide.join(', ')}`);
  await shot('dashboard-mobile.png');
  await page.setViewportSize({ width: 1440, height: 900 });
});

test('no request leaves localhost, no secret shows, no script error', async () => {
  const resources = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  const all = [...requested, ...resources];
  assert.ok(all.length > 5, `requests were recorded: ${all.length}`);
  const foreign = all.filter((u) => !u.startsWith(`${base}/`));
  assert.deepEqual(foreign, [], 'every request stays on the gateway origin');
  const html = await page.content();
  assert.ok(!html.includes(PROVIDER_KEY), 'provider key in the page');
  assert.ok(!html.includes(MASTER), 'master key in the page');
  const stats = await (await fetch(`${base}/admin/stats?window=1h&recent=200`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
  assert.ok(!stats.includes(PROVIDER_KEY) && !stats.includes(MASTER), 'secret in /admin/stats');
  const unexpected = pageErrors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch|net::ERR|status of 401/.test(e));
  assert.deepEqual(unexpected, [], 'script errors');
});
