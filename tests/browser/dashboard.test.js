// The dashboard in a real browser: headless Chromium (Debian's `chromium` package, driven by
// playwright-core; no browser is downloaded) against the real `wshub` binary.
//
// It opens the page, waits until it is live, makes traffic (WebSocket clients, one of them
// subscribed, and HTTP publishes), waits until the cards and the busiest-topics table show it,
// takes screenshots (laptop, phone, dark), then kills the hub and checks that the page says it
// is reconnecting, restarts the hub on the same port and checks that the page is live again.
// Throughout: no console error and no Content-Security-Policy violation.
//
// WSHUB_BIN: the binary (default target/debug/wshub); CHROMIUM: the browser (default /usr/bin/chromium).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as pause, setInterval as every } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BIN = resolve(ROOT, process.env.WSHUB_BIN || 'target/debug/wshub');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = join(ROOT, 'test-output', 'browser');
// A stream path other than the default: the page must learn it from the hub.
const CONFIG = 'metrics:\n  stream_path: /live/metrics\n';
const TOPIC = 'browser-test/load';
const WAIT = 15000;

/** Starts `wshub serve` on `port` (0: any) and resolves once it prints its address. */
function startHub(port) {
  const dir = mkdtempSync(join(tmpdir(), 'wshub-browser-'));
  const config = join(dir, 'wshub.yaml');
  writeFileSync(config, CONFIG);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WSHUB_')));
  const child = spawn(BIN, ['serve', '--config', config, '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000); });
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`wshub did not start:\n${stderr}`)), WAIT);
    child.on('exit', (code) => fail(new Error(`wshub exited with ${code}:\n${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /listening on http:\/\/(\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        done({ child, addr: match[1], port: Number(match[1].split(':').pop()) });
      }
    });
  });
}

function stopHub(hub) {
  if (hub && hub.child.exitCode === null && hub.child.signalCode === null) hub.child.kill('SIGKILL');
}

/** Publishes to TOPIC over HTTP until `signal` aborts. */
async function publishUntil(addr, signal) {
  let n = 0;
  // At most 100 publishes a second, so the publisher does not take a core from the hub.
  const ticks = every(10, undefined, { signal });
  try {
    for await (const _tick of ticks) {
      const response = await fetch(`http://${addr}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: TOPIC, event: 'tick', payload: { n: (n += 1) } }),
      });
      assert.equal(response.status, 200, await response.text());
    }
  } catch (err) {
    if (err.name !== 'AbortError') throw err;
  }
  return n;
}

/** Polls `check` until it returns true, failing with `what` after `ms`. */
async function until(check, what, ms = WAIT) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(50);
  }
}

const cardText = (page, field) => page.locator(`[data-field="${field}"]`).innerText();

test('the dashboard shows live traffic, fits a laptop and a phone, and reconnects', { timeout: 90000 }, async () => {
  assert.ok(existsSync(BIN), `${BIN} not found: build it with cargo build -p wshub, or set WSHUB_BIN`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium, or set CHROMIUM`);
  mkdirSync(OUT, { recursive: true });

  let hub = await startHub(0);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const publishing = new AbortController();
  let publisher = Promise.resolve(0);
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();

    // Every console error and page error, each with whether the hub was down at the time:
    // then, and only then, Chromium's own "WebSocket connection … failed" lines are expected.
    let hubDown = false;
    page.on('console', (m) => { if (m.type() === 'error') errors.push({ text: m.text(), hubDown }); });
    page.on('pageerror', (e) => errors.push({ text: `uncaught: ${e.message}`, hubDown }));
    // CSP violations are also reported as console errors; the event says which directive.
    await page.addInitScript(() => {
      window.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
      });
    });

    // The page's own WebSockets, to check what it asks the stream for on each connection.
    const streams = [];
    page.on('websocket', (ws) => {
      const stream = { url: ws.url(), sent: [], timeSeries: 0 };
      streams.push(stream);
      ws.on('framesent', (frame) => stream.sent.push(JSON.parse(String(frame.payload))));
      ws.on('framereceived', (frame) => {
        if (JSON.parse(String(frame.payload)).type === 'TimeSeries') stream.timeSeries += 1;
      });
    });

    const response = await page.goto(`http://${hub.addr}/dashboard`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /default-src 'self'/);

    // Live, with numbers in the cards and a chart in each panel.
    await page.waitForFunction(() => {
      const live = document.getElementById('status').dataset.state === 'live';
      return live && /^\d/.test(document.querySelector('[data-field="active_connections"]').textContent);
    }, null, { timeout: WAIT });
    assert.equal(await page.locator('#status').innerText(), 'live');
    assert.equal(await page.locator('.plot .uplot canvas').count(), 4, 'four charts drawn');
    const connectionsBefore = Number(await cardText(page, 'active_connections'));

    // Traffic: three /ws clients in another tab (one subscribed to TOPIC), and an HTTP publisher.
    const clients = await context.newPage();
    await clients.evaluate(async ({ url, topic }) => {
      const open = () => new Promise((done, fail) => {
        const ws = new WebSocket(url);
        ws.onmessage = (e) => { if (JSON.parse(e.data).type === 'connection.established') done(ws); };
        ws.onerror = () => fail(new Error('client could not connect'));
      });
      window.sockets = await Promise.all([open(), open(), open()]);
      window.received = 0;
      await new Promise((done) => {
        window.sockets[0].onmessage = (e) => {
          const message = JSON.parse(e.data);
          if (message.type === 'subscribed') done();
          if (message.topic === topic && message.type === 'tick') window.received += 1;
        };
        window.sockets[0].send(JSON.stringify({ id: 's1', type: 'subscribe', topic }));
      });
    }, { url: `ws://${hub.addr}/ws`, topic: TOPIC });
    publisher = publishUntil(hub.addr, publishing.signal);

    // The page shows it: more connections, messages going out, the topic in the table.
    await page.waitForFunction(({ before, topic }) => {
      const number = (field) => Number(document.querySelector(`[data-field="${field}"]`).textContent.replace(/[^\d.]/g, ''));
      const topics = [...document.querySelectorAll('#topics td.name')].map((td) => td.textContent);
      return number('active_connections') >= before + 3 && number('messages_out_per_second') > 0 && topics.includes(topic);
    }, { before: connectionsBefore, topic: TOPIC }, { timeout: WAIT });
    const row = page.locator('#topics tr', { has: page.locator('td.name', { hasText: TOPIC }) });
    assert.equal(await row.locator('td.num').innerText(), '1', 'one subscriber');
    assert.ok(await clients.evaluate(() => window.received) > 0, 'the subscriber received the publishes');

    // Let the charts draw a few seconds of traffic, then photograph the page three ways.
    await page.waitForFunction(() => Number(document.querySelector('[data-field="messages_sent_total"]').textContent.replace(/\D/g, '')) >= 100,
      null, { timeout: WAIT });
    await page.screenshot({ path: join(OUT, 'dashboard-laptop.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => document.querySelector('.plot .uplot').getBoundingClientRect().width <= 390, null, { timeout: WAIT });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the phone layout scrolls sideways by ${overflow}px`);
    await page.screenshot({ path: join(OUT, 'dashboard-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForFunction(() => getComputedStyle(document.body).backgroundColor !== 'rgb(244, 245, 248)', null, { timeout: WAIT });
    await page.screenshot({ path: join(OUT, 'dashboard-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    publishing.abort();
    await publisher;

    // The hub dies: the page says it is reconnecting, with a countdown and an attempt number.
    hubDown = true;
    stopHub(hub);
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'reconnecting', null, { timeout: WAIT });
    assert.match(await page.locator('#status').innerText(), /^reconnecting (in \d+s|…) \(attempt \d+\)$/);
    await page.screenshot({ path: join(OUT, 'dashboard-reconnecting.png') });

    // Back on the same port: live again, without a reload.
    hub = await startHub(hub.port);
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'live', null, { timeout: 45000 });
    hubDown = false;

    // Both connections (before and after the restart) used the configured path, asked for
    // history and got it: the charts are seeded, and refilled after a reconnect. (The page is
    // live at the first Snapshot, which the hub sends before it answers the request.)
    const answered = streams.filter((s) => s.timeSeries > 0);
    assert.ok(answered.length >= 1, `history on the first connection: ${JSON.stringify(streams)}`);
    const last = streams[streams.length - 1];
    await until(() => last.timeSeries >= 7, `history after the reconnect: ${JSON.stringify(streams)}`);
    for (const stream of new Set([...answered, last])) {
      assert.ok(stream.url.endsWith('/live/metrics'), stream.url);
      assert.ok(stream.sent.some((m) => m.include_history === true && Array.isArray(m.metrics)), JSON.stringify(stream.sent));
      assert.ok(stream.timeSeries >= 7, `one TimeSeries per charted metric, got ${stream.timeSeries}: ${JSON.stringify(streams)}`);
    }

    const violations = await page.evaluate(() => window.cspViolations);
    assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
    const unexpected = errors.filter((e) => !(e.hubDown && /WebSocket connection to .* failed/.test(e.text)));
    assert.deepEqual(unexpected.map((e) => e.text), [], 'no console error');
  } catch (error) {
    // What the page said is usually the reason a wait timed out.
    if (errors.length) error.message += `\nconsole errors:\n${errors.map((e) => `  ${e.text}`).join('\n')}`;
    throw error;
  } finally {
    publishing.abort();
    await publisher.catch(() => {});
    await browser.close();
    stopHub(hub);
  }
});
