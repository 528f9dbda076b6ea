/**
 * bench/RESULTS.md as a whole: the run's context, the tables, the misses and findings, and what
 * each figure measures. Pure.
 */
import { count, nodeCommand, type Results } from './figures.js';
import { memorySection, scaleFindings } from './report-findings.js';
import { issue13Measured } from './report-issue13-text.js';

export function renderDocument(r: Results, tables: string, misses: string[]): string {
  const m = r.machine;
  const top = r.levels.at(-1)?.plan.level ?? 0;
  return `# Benchmark results

Written by \`bench/run.ts\`; every run rewrites this file.

- Command: \`${r.command}\` (measuring took ${r.durationS.toFixed(0)} s, after building Portico)
- Date: ${r.date}; load average (1/5/15 min) before ${r.load.before}, after ${r.load.after}
- Machine: ${m.cpus} CPUs (\`nproc\`), ${m.model}, ${m.memory} memory, ${m.kernel}
- nginx: ${m.nginx}; Node ${m.node}; Portico run as \`${nodeCommand(r.nodeArgs)}\` (bin/portico's flags), \`PORT_RANGE=${r.range.from}-${r.range.to}\`, \`LOG_LEVEL=warn\`

${tables}

## Where a target is missed, and why

${misses.length === 0 ? 'Every target is met in this run.' : misses.join('\n')}

## Scale findings

${scaleFindings(r).join('\n')}

## Memory

${memorySection(r)}

## What is measured

- **The ladder.** Portico holds 0, then 1,000, then ${count(top)} streams, filled through the API: \`POST /v1/streams\`
  without a port (Portico allocates), ${'500'} requests kept in flight, each answer followed at once by the next
  request; reloads are the \`signal 1 (SIGHUP)\` lines in its nginx's error log. Beside it the **floor**: a second
  nginx started by the benchmark with a copy of the main config Portico wrote (same \`worker_connections\`, same
  http block) and a mirror of Portico's tree: as many stream files, each the very text Portico generates (taken
  from a dry run), on ports of its own (16000 up), loaded with one \`nginx -t\` and one HUP.
- **(1) Create latency**: from sending \`GET /createstream/<port>/127.0.0.1:<echo>\` until a TCP connection to the
  port carries a byte to the echo backend and back ("echoes"), and until Portico answered. A bare TCP connect is
  not enough: nginx's master listens on a new port before any new worker exists. Each create is followed by a
  \`removestream\` (not timed). The floor's change: rewrite one stream file with a new port, bare \`nginx -t -q\`
  of the whole mirror tree, \`kill -HUP\`, until the new port echoes. Creates and floor changes alternate, one
  of each per iteration, after one unrecorded warm-up of each at every level.
- **(2) 200 parallel creates**: 200 concurrent \`POST /v1/streams\` without a port, one connection each; wall
  time until every request answered and every allocated port echoes. Ports are checked to be distinct and all
  still serving at the end (the run fails otherwise), then deleted. Compared with one create (answered and
  echoing) at the same level.
- **(3) List queries**: one request at a time, from sending to the last byte, the answer checked to list every
  stream.
- **(4) Memory**: VmRSS (and VmHWM) of Portico's process from \`/proc/<pid>/status\`. Portico runs as
  \`${nodeCommand(r.nodeArgs)}\`, as \`make start\` and the container run it (\`make bench\` builds it first): tsx's
  loader would add some 35 MB. After the ladder it is restarted on the full tree twice, as shipped and with
  node's default heap sizing, each followed by the same list queries and one round of parallel creates.
- **(5) Data plane**: a stream and an app created through Portico (served by its nginx on its generated
  config, measured first, while Portico holds nothing else) against a reference nginx of the same binary with a
  hand-written config (\`bench/dataplane-configs.ts\`) for the same backends (a Node TCP echo server; a
  backend nginx answering \`200 ok\`). Rounds alternate generated, reference, generated, reference...
  after one warm-up each. CPU is utime + stime of the serving nginx's worker processes from
  \`/proc/<pid>/stat\` over the round; efficiency is work per CPU second, and the ratio divides the generated
  config's by the reference's (≥ 1: Portico's config costs no more). The TCP blaster counts bytes echoed back
  (each crossed nginx twice); a round of short connections counts connections; wrk counts requests.
${appsMeasured(r)}${issue13Measured(r)}- p90 is nearest-rank: with few samples (the parallel rounds) it is close to the maximum.

## Caveat

This machine is shared and noisy (other jobs run beside the benchmark; see the load average above): compare
ratios taken in one run rather than absolute milliseconds across runs, and re-run before trusting a difference
under ~20%.
`;
}

/** What the apps rung measures; nothing for a run from before it existed. */
function appsMeasured(r: Results): string {
  if (r.apps === undefined) return '';
  return `- **(6) HTTP apps**: last, on a second Portico of its own (no stream; ports 29500-29599; the same node flags), so none of the figures
  above is taken while its apps exist. Filled through \`POST /v1/apps\` (${r.apps.fill.concurrency} requests in flight) with a mix:
  every fifth app has a second server name, every third three routes (\`/api\` with its prefix replaced, \`/static\`,
  the fallback), every second a sticky fallback over two backends, the middle one is the default; the backends
  are Node HTTP servers answering their name. Beside it a **floor** nginx on a copy of the main config and of every
  file Portico wrote in its apps' directory (listen ports and paths moved), loaded with one \`nginx -t\` and one
  HUP. A **replace**: \`PUT /v1/apps/app-0000\` switching its one upstream between two backends no other app uses,
  from sending until requests with its Host, polled every 2 ms, are answered only by the new backend through
  nginx (the first of ${r.apps.servedStreak} answers in a row from it: every app shares one listening socket, and after a
  reload old workers keep accepting beside the new ones until the master stops them, so one new answer proves
  little), and until Portico answered. The floor's change: rewrite that app's file with the other address, bare
  \`nginx -t -q\`, \`kill -HUP\`, polled the same way.
  Replaces and floor changes alternate, after one unrecorded warm-up of each. \`GET /v1/apps\` is timed as the
  stream lists are.
`;
}
