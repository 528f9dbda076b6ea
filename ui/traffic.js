// Traffic charts: a small uPlot chart per stream row (bytes in and out, sessions, per interval over the
// last minutes) from GET /v1/traffic/streams, refreshed every interval while the streams page shows.
// The chart is an image to assistive technology (role="img"), named by a sentence that states the
// totals over the window, which is also what tests read.
import uPlot from '/ui/vendor/uPlot.esm.js';
import { api, bytes } from './lib.js';

/** The API's bound on ports per request (MAX_TRAFFIC_RESOURCES). */
const PORTS_PER_REQUEST = 100;
const WIDTH = 160;
const HEIGHT = 44;

/** The charts of the rows shown: port → { box, plot }. */
const charts = new Map();
let timer;
/** Bumped by stopTraffic: an answer to an earlier refresh is dropped. */
let generation = 0;

/** A table cell holding the stream's chart, filled at the next refresh. */
export function trafficCell(port) {
  const cell = document.createElement('td');
  const box = document.createElement('div');
  box.className = 'traffic-chart';
  box.setAttribute('role', 'img');
  box.setAttribute('aria-label', `stream ${port}: traffic not read yet`);
  box.dataset.port = String(port);
  cell.append(box);
  charts.set(port, { box, plot: undefined });
  return cell;
}

/**
 * The first read waits this long after the rows are drawn: typing in the filter redraws the rows at
 * each keystroke, and only the rows the typing settles on are read.
 */
const SETTLE_MS = 300;

/** Reads the traffic of the rows shown now (once they settle), then again every interval, until stopTraffic. */
export function startTraffic() {
  clearTimeout(timer);
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
export function stopTraffic() {
  generation += 1;
  clearTimeout(timer);
  for (const { plot } of charts.values()) plot?.destroy();
  charts.clear();
}

/** One read of every chart shown; answers the interval to wait, or 'off' when Portico keeps no traffic. */
async function refresh(mine) {
  const ports = [...charts.keys()];
  let intervalMs = 10_000;
  for (let i = 0; i < ports.length; i += PORTS_PER_REQUEST) {
    const res = await api(`/v1/traffic/streams?ports=${ports.slice(i, i + PORTS_PER_REQUEST).join(',')}`);
    if (mine !== generation) return intervalMs;
    if (res.status === 404) {
      for (const [port, chart] of charts) chart.box.setAttribute('aria-label', `stream ${port}: no traffic history (TRAFFIC_METRICS is off)`);
      return 'off';
    }
    if (!res.ok) continue;
    intervalMs = res.body.intervalMs;
    for (const stream of res.body.streams) {
      const chart = charts.get(stream.port);
      if (chart !== undefined) draw(stream, chart, res.body);
    }
  }
  return intervalMs;
}

/** "90 seconds", "15 minutes": how long the window is. */
function duration(ms) {
  const seconds = Math.max(1, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  return `${Math.round(seconds / 60)} minutes`;
}

/** The window as uPlot data: one slot per interval (seconds), the points where the stream moved, zero elsewhere. */
function dataOf(stream, window) {
  const to = Date.parse(window.to);
  const slots = Math.max(1, Math.round((to - Date.parse(window.from)) / window.intervalMs));
  const xs = Array.from({ length: slots }, (_, i) => (to - (slots - 1 - i) * window.intervalMs) / 1000);
  const bytesIn = new Array(slots).fill(0);
  const bytesOut = new Array(slots).fill(0);
  const sessions = new Array(slots).fill(0);
  for (const point of stream.series) {
    const slot = slots - 1 - Math.round((to - Date.parse(point.at)) / window.intervalMs);
    if (slot < 0 || slot >= slots) continue;
    bytesIn[slot] += point.bytesIn;
    bytesOut[slot] += point.bytesOut;
    sessions[slot] += point.sessions;
  }
  return [xs, bytesIn, bytesOut, sessions];
}

function draw(stream, chart, window) {
  const { totals } = stream;
  const span = Math.max(Date.parse(window.to) - Date.parse(window.from), window.intervalMs);
  const count = `${totals.sessions} session${totals.sessions === 1 ? '' : 's'}`;
  const text = `stream ${stream.port}: ${bytes(totals.bytesIn)} in, ${bytes(totals.bytesOut)} out, ${count} in the last ${duration(span)}`;
  chart.box.setAttribute('aria-label', text);
  chart.box.title = text;
  const data = dataOf(stream, window);
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
      scales: { x: { time: true }, bytes: { range: (_u, _min, max) => [0, Math.max(max, 1)] }, sessions: { range: (_u, _min, max) => [0, Math.max(max, 1)] } },
      axes: [{ show: false }, { show: false, scale: 'bytes' }, { show: false, scale: 'sessions' }],
      series: [
        {},
        { label: 'bytes in', scale: 'bytes', stroke: '#2563eb', width: 1.5, points: { show: false } },
        { label: 'bytes out', scale: 'bytes', stroke: '#16a34a', width: 1.5, points: { show: false } },
        { label: 'sessions', scale: 'sessions', stroke: '#d97706', width: 1, dash: [3, 2], points: { show: false } },
      ],
    },
    data,
    chart.box,
  );
}
