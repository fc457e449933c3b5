// wshub dashboard: draws the hub's live metrics stream (CONTRACT §8).
//
// One WebSocket to the stream path the hub wrote into <meta name="wshub-metrics-path">.
// On every (re)connection it asks for the charted metrics' history first, so the charts have
// no hole across a reconnect, then for every metric live. Each Snapshot updates the cards, the
// busiest-topics table and the newest point of each chart. Plain ES2020, no build step.
// Topic names come from users: they reach the page through textContent only, never as markup.
'use strict';

(() => {
  const STREAM_PATH = document.querySelector('meta[name="wshub-metrics-path"]')?.content || '/ws/metrics';

  // The browser keeps the hub's history (24 h at 10 s by default) plus live points; live points
  // older than LIVE_SECONDS are thinned to the history's resolution, so a page left open for
  // days holds about 10,000 points per series, not one per second forever.
  const HISTORY_SECONDS = 24 * 3600;
  const LIVE_SECONDS = 15 * 60;
  const COARSE_SECONDS = 10;
  // Reconnect: exponential backoff with full jitter, so dashboards left open by many people
  // do not all knock at once when a hub restarts.
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // Snapshots come every second: a stream silent this long is dead even if TCP has not noticed
  // (a laptop waking from sleep, a proxy dropping the connection), and so is a handshake that
  // takes this long.
  const SILENCE_MS = 10000;

  // Each chart: [metric, legend label, CSS colour variable] per series.
  const CHARTS = [
    { id: 'chart-connections', series: [['active_connections', 'connections', '--c-connections']] },
    { id: 'chart-messages', series: [['messages_in_per_second', 'in/s', '--c-in'], ['messages_out_per_second', 'out/s', '--c-out']] },
    { id: 'chart-latency', series: [['delivery_latency_p50_ms', 'p50 ms', '--c-p50'], ['delivery_latency_p99_ms', 'p99 ms', '--c-p99']] },
    { id: 'chart-errors', series: [['errors_per_second', 'errors/s', '--c-errors'], ['rate_limit_hits_per_second', 'rate-limit hits/s', '--c-limits']] },
  ];
  const CHARTED = CHARTS.flatMap((c) => c.series.map(([metric]) => metric));

  // ---- Formatting ---------------------------------------------------------------------

  const formats = [0, 1, 2].map((d) => new Intl.NumberFormat(undefined, { maximumFractionDigits: d }));
  const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

  function num(v) {
    const a = Math.abs(v);
    if (a >= 100000) return compactFormat.format(v);
    return formats[a >= 100 || Number.isInteger(v) ? 0 : a >= 10 ? 1 : 2].format(v);
  }

  function bytes(v) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${formats[i && v < 100 ? 1 : 0].format(v)} ${units[i]}`;
  }

  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${Math.floor(s % 60)}s`;
    return `${Math.floor(s)}s`;
  }

  const FIELD_FORMAT = { memory_rss_bytes: bytes, uptime_seconds: duration };
  // Nouns after a count: [one, many].
  const NOUNS = { requests_total: ['request', 'requests'], subscriptions: ['subscription', 'subscriptions'], topics: ['topic', 'topics'] };

  // ---- Series kept in the browser -----------------------------------------------------

  // The points of one chart: x in seconds (what uPlot expects), one y array per series.
  // A null row marks a gap (the hub was down and its history restarted): uPlot breaks the line.
  class Store {
    constructor(n) {
      this.xs = [];
      this.ys = Array.from({ length: n }, () => []);
    }

    get data() { return [this.xs, ...this.ys]; }

    lastX() { return this.xs.length ? this.xs[this.xs.length - 1] : -Infinity; }

    push(x, values) {
      if (x <= this.lastX()) return; // a Snapshot already covered by history, or a repeat
      if (x - this.lastX() > 3 * COARSE_SECONDS && this.xs.length) this.pushRow(this.lastX() + 1, null);
      this.pushRow(x, values);
    }

    pushRow(x, values) {
      this.xs.push(x);
      this.ys.forEach((y, i) => y.push(values ? values[i] : null));
    }

    // The hub's history replaces what the browser holds for the same span (it covers any time
    // the page was disconnected); older points, from before a hub restart, and newer live
    // points are kept.
    setHistory(xs, ys) {
      if (!xs.length) return;
      const first = xs[0], last = xs[xs.length - 1];
      const old = new Store(this.ys.length);
      let i = 0;
      for (; i < this.xs.length && this.xs[i] < first; i += 1) old.pushRow(this.xs[i], this.ys.map((y) => y[i]));
      xs.forEach((x, j) => old.push(x, ys.map((y) => y[j])));
      for (; i < this.xs.length; i += 1) {
        if (this.xs[i] > last) old.push(this.xs[i], this.ys.map((y) => y[i]));
      }
      this.xs = old.xs;
      this.ys = old.ys;
    }

    // Drops points past the history window and thins live points older than LIVE_SECONDS.
    compact(now) {
      const kept = new Store(this.ys.length);
      let lastKept = -Infinity;
      this.xs.forEach((x, i) => {
        const row = this.ys.map((y) => y[i]);
        const gap = row.every((v) => v === null);
        if (x < now - HISTORY_SECONDS) return;
        if (!gap && x < now - LIVE_SECONDS && x - lastKept < COARSE_SECONDS - 1) return;
        kept.pushRow(x, gap ? null : row);
        if (!gap) lastKept = x;
      });
      this.xs = kept.xs;
      this.ys = kept.ys;
    }
  }

  const stores = CHARTS.map((c) => new Store(c.series.length));

  // Server time, so a browser whose clock is off still shows the newest points at the right
  // edge; it keeps running from the last message while disconnected, so the charts keep
  // scrolling and the outage shows as empty space.
  let serverTime = Date.now() / 1000;
  let serverTimeAt = performance.now();
  const now = () => serverTime + (performance.now() - serverTimeAt) / 1000;

  // ---- Charts ---------------------------------------------------------------------------

  let windowSeconds = 900;
  const plots = [];
  const narrow = matchMedia('(max-width: 600px)');
  const dark = matchMedia('(prefers-color-scheme: dark)');

  function makePlot(def, store, el) {
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const strokes = [null, ...def.series.map(([, , variable]) => color(variable))];
    // A fresh object per axis: uPlot writes its defaults into the options it is given.
    const axis = (extra) => ({
      stroke: color('--dim'),
      grid: { stroke: color('--grid'), width: 1 },
      ticks: { stroke: color('--grid'), width: 1, size: 4 },
      font: '12px system-ui, sans-serif',
      ...extra,
    });
    return new uPlot({
      width: el.clientWidth,
      height: narrow.matches ? 170 : 210,
      cursor: { drag: { x: false, y: false } }, // no drag-zoom: it would fight the live window
      scales: {
        x: { time: true, range: () => timeRange(store) },
        // Counts and rates start at zero; head room so the line does not touch the top.
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [axis(), axis({ size: 48, values: (u, splits) => splits.map(num) })],
      legend: { markers: { width: 0, fill: (u, i) => strokes[i] } },
      hooks: { setLegend: [newestInLegend] },
      series: [
        { value: (u, x) => (x == null ? '–' : new Date(x * 1000).toLocaleTimeString()) },
        ...def.series.map(([, label], s) => ({
          label,
          stroke: strokes[s + 1],
          width: 2,
          points: { show: false },
          fill: (u) => fade(u, strokes[s + 1]),
          value: (u, v) => (v == null ? '–' : num(v)),
        })),
      ],
    }, store.data, el);
  }

  // Unless the pointer is on the chart, its legend shows the newest values (uPlot would show
  // dashes). `false`: without firing this hook again.
  function newestInLegend(u) {
    const last = u.data[0].length - 1;
    if (u.cursor.left < 0 && last >= 0 && u.legend.idx !== last) u.setLegend({ idx: last }, false);
  }

  // The chosen window ending now, or less while the hub has less to show (a hub started a
  // minute ago fills the chart instead of its right edge), but at least 30 s.
  function timeRange(store) {
    const end = now();
    const first = store.xs.length ? store.xs[0] : end;
    return [Math.max(end - windowSeconds, Math.min(first, end - 30)), end];
  }

  // A vertical gradient under a line: the colour at the top, nothing at the bottom.
  function fade(u, hex) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    // uPlot may ask before it has laid out the plot area; a flat tint does then.
    if (!u.bbox || !Number.isFinite(u.bbox.top) || !Number.isFinite(u.bbox.height)) return `rgba(${r},${g},${b},0.1)`;
    const gradient = u.ctx.createLinearGradient(0, u.bbox.top, 0, u.bbox.top + u.bbox.height);
    gradient.addColorStop(0, `rgba(${r},${g},${b},0.22)`);
    gradient.addColorStop(1, `rgba(${r},${g},${b},0)`);
    return gradient;
  }

  // Colours are read when a chart is made, so a theme change rebuilds them.
  function buildPlots() {
    plots.forEach((p) => p.destroy());
    plots.length = 0;
    CHARTS.forEach((def, i) => plots.push(makePlot(def, stores[i], document.getElementById(def.id))));
  }

  function redraw(i) { plots[i]?.setData(stores[i].data); }

  function resize() {
    CHARTS.forEach((def, i) => {
      const el = document.getElementById(def.id);
      plots[i]?.setSize({ width: el.clientWidth, height: narrow.matches ? 170 : 210 });
    });
  }

  // ---- Cards and topics -----------------------------------------------------------------

  const fields = new Map([...document.querySelectorAll('[data-field]')].map((el) => [el.dataset.field, el]));
  const topicsBody = document.getElementById('topics');
  const topicsEmpty = document.getElementById('topics-empty');
  const updated = document.getElementById('updated');

  function showSnapshot(snapshot) {
    for (const [name, el] of fields) {
      const v = snapshot[name];
      if (typeof v === 'number') el.textContent = (FIELD_FORMAT[name] || num)(v);
    }
    document.querySelectorAll('[data-noun]').forEach((el) => {
      const v = snapshot[el.dataset.noun];
      if (typeof v === 'number') el.textContent = NOUNS[el.dataset.noun][v === 1 ? 0 : 1];
    });
    if (Array.isArray(snapshot.top_topics)) showTopics(snapshot.top_topics);
    updated.textContent = new Date(snapshot.timestamp).toLocaleTimeString();
    updated.dateTime = snapshot.timestamp;
    const x = Date.parse(snapshot.timestamp) / 1000;
    CHARTS.forEach((def, i) => {
      const values = def.series.map(([metric]) => snapshot[metric]);
      if (values.every((v) => typeof v === 'number')) {
        stores[i].push(x, values);
        redraw(i);
      }
    });
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function showTopics(topics) {
    const most = Math.max(1, ...topics.map((t) => t.subscribers));
    topicsBody.replaceChildren(...topics.map(({ topic, subscribers }) => {
      const name = element('td', 'name', topic);
      name.title = topic;
      const fill = element('div', 'fill');
      fill.style.width = `${(100 * subscribers / most).toFixed(1)}%`; // CSSOM, allowed by the CSP
      const track = element('div', 'track');
      track.append(fill);
      const bar = element('td', 'share');
      bar.append(track);
      const row = element('tr');
      row.append(name, element('td', 'num', num(subscribers)), bar);
      return row;
    }));
    topicsBody.closest('table').hidden = topics.length === 0;
    topicsEmpty.hidden = topics.length > 0;
  }

  // ---- History ----------------------------------------------------------------------------

  // TimeSeries arrive one metric at a time; a chart takes them once it has all of its own.
  let pendingHistory = new Map();

  function takeHistory(series) {
    pendingHistory.set(series.metric_name, series.data_points || []);
    CHARTS.forEach((def, i) => {
      const metrics = def.series.map(([metric]) => metric);
      if (!metrics.includes(series.metric_name) || !metrics.every((m) => pendingHistory.has(m))) return;
      // The hub stores every metric at the same instants; join on the timestamp anyway.
      const rows = new Map();
      metrics.forEach((metric, s) => {
        for (const point of pendingHistory.get(metric)) {
          const x = Date.parse(point.timestamp) / 1000;
          if (!rows.has(x)) rows.set(x, metrics.map(() => null));
          rows.get(x)[s] = point.value;
        }
        pendingHistory.delete(metric);
      });
      const xs = [...rows.keys()].sort((a, b) => a - b);
      stores[i].setHistory(xs, metrics.map((m, s) => xs.map((x) => rows.get(x)[s])));
      redraw(i);
    });
  }

  // ---- Connection -------------------------------------------------------------------------

  const badge = document.getElementById('status');
  let socket = null;
  let attempt = 0; // reconnection attempts since the last live connection
  let retryTimer = 0;
  let retryAt = 0;
  let silenceTimer = 0;
  let countdown = 0;

  function setStatus(state, text) {
    badge.dataset.state = state;
    badge.textContent = text;
    document.body.classList.toggle('stale', state !== 'live');
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdown);
    retryTimer = 0;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}${STREAM_PATH}`);
    socket = ws;
    pendingHistory = new Map();
    expectWithin(SILENCE_MS); // also bounds a handshake that never completes
    if (attempt) setStatus('reconnecting', `reconnecting… (attempt ${attempt})`);
    ws.onopen = () => {
      // History for the charts only (all metrics would be three times the bytes), then a
      // selection of every metric for the cards. The hub answers them in order.
      ws.send(JSON.stringify({ metrics: CHARTED, interval_seconds: 1, include_history: true }));
      ws.send(JSON.stringify({ metrics: [], interval_seconds: 1 }));
    };
    ws.onmessage = (event) => {
      expectWithin(SILENCE_MS);
      const message = JSON.parse(event.data);
      if (typeof message.timestamp === 'string') {
        serverTime = Date.parse(message.timestamp) / 1000;
        serverTimeAt = performance.now();
      }
      if (message.type === 'Snapshot') {
        if (badge.dataset.state !== 'live') {
          attempt = 0; // the connection works: the next drop starts the backoff over
          setStatus('live', 'live');
        }
        showSnapshot(message);
      } else if (message.type === 'TimeSeries') {
        takeHistory(message);
      } else if (message.type === 'Error') {
        console.warn(`metrics stream: ${message.message}`); // a hub of another version
      }
    };
    // onerror is always followed by onclose, and the browser logs the cause itself.
    ws.onclose = () => dropped(ws);
  }

  // Gives up on the stream if nothing arrives within `ms`.
  function expectWithin(ms) {
    clearTimeout(silenceTimer);
    silenceTimer = setTimeout(() => dropped(socket), ms);
  }

  function dropped(ws) {
    if (!ws || ws !== socket) return;
    socket = null;
    clearTimeout(silenceTimer);
    // Detach first: a half-dead socket may take minutes to report its close.
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.close();
    if (!navigator.onLine) {
      setStatus('disconnected', 'disconnected (offline)'); // the 'online' event reconnects
      return;
    }
    attempt += 1;
    const delay = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (attempt - 1));
    retryAt = performance.now() + delay;
    retryTimer = setTimeout(connect, delay);
    showCountdown();
    countdown = setInterval(showCountdown, 250);
  }

  function showCountdown() {
    const seconds = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
    setStatus('reconnecting', `reconnecting in ${seconds}s (attempt ${attempt})`);
  }

  addEventListener('online', () => {
    if (!socket) connect();
  });
  addEventListener('offline', () => {
    if (socket) return; // an open stream notices by itself
    clearTimeout(retryTimer);
    clearInterval(countdown);
    setStatus('disconnected', 'disconnected (offline)');
  });

  // ---- Start ------------------------------------------------------------------------------

  document.querySelectorAll('.range button').forEach((button) => {
    button.addEventListener('click', () => {
      windowSeconds = Number(button.dataset.range);
      document.querySelectorAll('.range button').forEach((b) => b.setAttribute('aria-pressed', String(b === button)));
      plots.forEach((p, i) => redraw(i));
    });
  });

  buildPlots();
  new ResizeObserver(resize).observe(document.querySelector('.charts'));
  dark.addEventListener('change', buildPlots);
  narrow.addEventListener('change', resize);
  // Thin old points once a minute; while nothing arrives, keep the time axis moving so the
  // outage shows.
  setInterval(() => stores.forEach((s, i) => { s.compact(now()); redraw(i); }), 60000);
  setInterval(() => { if (!socket || badge.dataset.state !== 'live') plots.forEach((p, i) => redraw(i)); }, 5000);
  connect();
})();
