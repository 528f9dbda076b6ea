// Traffic charts: a small uPlot chart per row, per interval over the last minutes, refreshed every
// interval while its page shows: a stream's bytes in and out and sessions (GET /v1/traffic/streams),
// an app's requests by status class (GET /v1/traffic/apps). Both kinds share the reading, the
// refresh and the drawing below; a kind only says what it asks for and what it plots.
// The chart is an image to assistive technology (role="img"), named by a sentence that states the
// totals over the window, which is also what tests read.
import uPlot from '/ui/vendor/uPlot.esm.js';
import { api, bytes } from './lib.js';

/** The API's bound on resources per request (MAX_TRAFFIC_RESOURCES). */
const PER_REQUEST = 100;
const WIDTH = 160;
const HEIGHT = 44;

/**
 * The first read waits this long after the rows are drawn: typing in the filter redraws the rows at
 * each keystroke, and only the rows the typing settles on are read.
 */
const SETTLE_MS = 300;

/** "90 seconds", "15 minutes": how long the window is. */
function duration(ms) {
  const seconds = Math.max(1, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  return `${Math.round(seconds / 60)} minutes`;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** The y range of a scale: from 0, at least 1, so an idle chart is a flat line at the bottom. */
const fromZero = () => ({ range: (_u, _min, max) => [0, Math.max(max, 1)] });

/**
 * The charts of one kind of row. `kind` says:
 * - `noun` ('stream', 'app') and `path` (/v1/traffic/streams) with its query parameter `param`;
 * - `list` (the answer's array) and `key` (each item's identifier field);
 * - `fields`: the series' fields, in plot order, with uPlot's `series` (label, scale, stroke...);
 * - `scales` and `axes` for uPlot; `describe(item)`: the totals as words, after "<noun> <key>: ".
 */
function chartsOf(kind) {
  /** The charts of the rows shown: key → { box, plot }. */
  const charts = new Map();
  let timer;
  /** Bumped by stop: an answer to an earlier refresh is dropped. */
  let generation = 0;

  /** A table cell holding the chart of `key`, filled at the next refresh. */
  function cell(key) {
    const td = document.createElement('td');
    const box = document.createElement('div');
    box.className = 'traffic-chart';
    box.setAttribute('role', 'img');
    box.setAttribute('aria-label', `${kind.noun} ${key}: traffic not read yet`);
    box.dataset[kind.key] = String(key);
    td.append(box);
    charts.set(key, { box, plot: undefined });
    return td;
  }

  /** Reads the traffic of the rows shown now (once they settle), then again every interval, until stop. */
  function start() {
    clearTimeout(timer);
    if (charts.size === 0) return;
    const mine = generation;
    const next = async () => {
      let intervalMs = 10_000;
      try {
        const answer = await refresh(mine);
        if (answer === 'off' || mine !== generation) return;
        intervalMs = answer;
      } catch {
        // a token is needed (the sign-in form shows) or the API is away: try again at the next interval
      }
      if (mine !== generation) return;
      timer = setTimeout(() => void next(), Math.min(Math.max(intervalMs, 1000), 60_000));
    };
    timer = setTimeout(() => void next(), SETTLE_MS);
  }

  /** Stops refreshing and lets go of the charts (the page is left, or its rows are built again). */
  function stop() {
    generation += 1;
    clearTimeout(timer);
    for (const { plot } of charts.values()) plot?.destroy();
    charts.clear();
  }

  /** One read of every chart shown; answers the interval to wait, or 'off' when Portico keeps no traffic. */
  async function refresh(mine) {
    const keys = [...charts.keys()];
    let intervalMs = 10_000;
    for (let i = 0; i < keys.length; i += PER_REQUEST) {
      const list = keys.slice(i, i + PER_REQUEST).map((key) => encodeURIComponent(String(key))).join(',');
      const res = await api(`${kind.path}?${kind.param}=${list}`);
      if (mine !== generation) return intervalMs;
      if (res.status === 404) {
        for (const [key, chart] of charts) chart.box.setAttribute('aria-label', `${kind.noun} ${key}: no traffic history (TRAFFIC_METRICS is off)`);
        return 'off';
      }
      if (!res.ok) continue;
      intervalMs = res.body.intervalMs;
      for (const item of res.body[kind.list]) {
        const chart = charts.get(item[kind.key]);
        if (chart !== undefined) draw(item, chart, res.body);
      }
    }
    return intervalMs;
  }

  /** The window as uPlot data: one slot per interval (seconds), the points where the item moved, zero elsewhere. */
  function dataOf(item, window) {
    const to = Date.parse(window.to);
    const slots = Math.max(1, Math.round((to - Date.parse(window.from)) / window.intervalMs));
    const xs = Array.from({ length: slots }, (_, i) => (to - (slots - 1 - i) * window.intervalMs) / 1000);
    const ys = kind.fields.map(() => new Array(slots).fill(0));
    for (const point of item.series) {
      const slot = slots - 1 - Math.round((to - Date.parse(point.at)) / window.intervalMs);
      if (slot < 0 || slot >= slots) continue;
      kind.fields.forEach((field, f) => {
        ys[f][slot] += point[field.name] ?? 0;
      });
    }
    return [xs, ...ys];
  }

  function draw(item, chart, window) {
    const span = Math.max(Date.parse(window.to) - Date.parse(window.from), window.intervalMs);
    const text = `${kind.noun} ${item[kind.key]}: ${kind.describe(item.totals)} in the last ${duration(span)}`;
    chart.box.setAttribute('aria-label', text);
    chart.box.title = text;
    const data = dataOf(item, window);
    if (chart.plot !== undefined) {
      chart.plot.setData(data);
      return;
    }
    chart.plot = new uPlot(
      {
        width: WIDTH,
        height: HEIGHT,
        legend: { show: false },
        cursor: { show: false },
        select: { show: false },
        padding: [2, 2, 2, 2],
        // Fresh option objects per chart: uPlot keeps what it is given.
        scales: { x: { time: true }, ...Object.fromEntries(Object.entries(kind.scales).map(([name, scale]) => [name, { ...scale }])) },
        axes: kind.axes.map((axis) => ({ ...axis })),
        series: [{}, ...kind.fields.map(({ name: _name, ...series }) => ({ points: { show: false }, ...series }))],
      },
      data,
      chart.box,
    );
  }

  return { cell, start, stop };
}

// ---------------------------------------------------------------------------------------------
// Streams: bytes in and out, sessions.
// ---------------------------------------------------------------------------------------------

const streams = chartsOf({
  noun: 'stream',
  path: '/v1/traffic/streams',
  param: 'ports',
  list: 'streams',
  key: 'port',
  fields: [
    { name: 'bytesIn', label: 'bytes in', scale: 'bytes', stroke: '#2563eb', width: 1.5 },
    { name: 'bytesOut', label: 'bytes out', scale: 'bytes', stroke: '#16a34a', width: 1.5 },
    { name: 'sessions', label: 'sessions', scale: 'sessions', stroke: '#d97706', width: 1, dash: [3, 2] },
  ],
  scales: { bytes: fromZero(), sessions: fromZero() },
  axes: [{ show: false }, { show: false, scale: 'bytes' }, { show: false, scale: 'sessions' }],
  describe: (totals) => `${bytes(totals.bytesIn)} in, ${bytes(totals.bytesOut)} out, ${plural(totals.sessions, 'session')}`,
});

/** A table cell holding the chart of the stream on `port`, filled at the next refresh. */
export const trafficCell = streams.cell;
/** Reads the traffic of the stream rows shown now (once they settle), then every interval, until stopTraffic. */
export const startTraffic = streams.start;
/** Stops the stream charts' refresh and lets go of them. */
export const stopTraffic = streams.stop;

// ---------------------------------------------------------------------------------------------
// Apps: requests by status class (1xx, rare, counts in the sentence but is not plotted).
// ---------------------------------------------------------------------------------------------

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

const apps = chartsOf({
  noun: 'app',
  path: '/v1/traffic/apps',
  param: 'names',
  list: 'apps',
  key: 'name',
  fields: [
    { name: '2xx', label: '2xx', scale: 'requests', stroke: '#16a34a', width: 1.5 },
    { name: '3xx', label: '3xx', scale: 'requests', stroke: '#2563eb', width: 1 },
    { name: '4xx', label: '4xx', scale: 'requests', stroke: '#d97706', width: 1.5, dash: [3, 2] },
    { name: '5xx', label: '5xx', scale: 'requests', stroke: '#dc2626', width: 2 },
  ],
  scales: { requests: fromZero() },
  axes: [{ show: false }, { show: false, scale: 'requests' }],
  // "12 requests (10 2xx, 2 5xx)": the total, then each class that had any.
  describe: (totals) => {
    const counts = CLASSES.filter((c) => (totals[c] ?? 0) > 0).map((c) => `${totals[c]} ${c}`);
    const total = CLASSES.reduce((n, c) => n + (totals[c] ?? 0), 0);
    return `${plural(total, 'request')}${counts.length > 0 ? ` (${counts.join(', ')})` : ''}`;
  },
});

/** A table cell holding the chart of the app `name`, filled at the next refresh. */
export const appTrafficCell = apps.cell;
/** Reads the traffic of the app rows shown now (once they settle), then every interval, until stopAppTraffic. */
export const startAppTraffic = apps.start;
/** Stops the app charts' refresh and lets go of them. */
export const stopAppTraffic = apps.stop;
