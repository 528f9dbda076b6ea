/**
 * "Scale findings" and "Memory" of bench/RESULTS.md: what the ladder shows about how Portico's own
 * costs grow with the tree, each phase named, each figure from this run. Pure.
 */
import { count, med, mb, ms, nodeCommand, p90, phaseMedian, type Results } from './figures.js';

function perLevel(r: Results, value: (l: Results['levels'][number]) => number, unit = 'ms'): string {
  return `${r.levels.map((l) => `${ms(value(l))} ${unit}`).join(' / ')} at ${r.levels.map((l) => count(l.plan.level)).join(' / ')} streams`;
}

/** Portico's scale problems as this run measured them, phase by phase. */
export function scaleFindings(r: Results): string[] {
  const single = (name: string) => (l: Results['levels'][number]) => phaseMedian(l.single.map((s) => s.phasesMs), name);
  const last = (name: string) => (l: Results['levels'][number]) => phaseMedian(l.parallel.map((p) => p.lastBatch.phasesMs), name);
  const changes = (l: Results['levels'][number]) => med(l.parallel.map((p) => p.lastBatch.changes));
  const top = r.levels.at(-1);
  const first = r.levels[0] as Results['levels'][number];
  const lines = [
    `1. **\`read\` stats the whole tree once a second** (phase \`read\`; \`src/store/config-dir.ts\` \`read\`). One create's ` +
      `\`read\`: ${perLevel(r, single('read'))}; the last batch of a 200-parallel round: ${perLevel(r, last('read'))}. ` +
      `Portico's own changes update its snapshot of the directory without a scan, but a batch or a query that comes more ` +
      `than \`RESCAN_MS\` (1 s) after the last full scan stats every file again (synchronously, 256 files per turn of the ` +
      `event loop), which is how a file edited in place by hand is seen. Single creates spaced by the benchmark's own ` +
      `steps mostly find the snapshot stale.`,
    `2. **\`plan\` probes the host for each allocated port** (phase \`plan\`; \`src/apply/plan.ts\`, \`src/ports/allocate.ts\`): ` +
      `a create without a port binds and closes a socket on the candidate port (nginx would fail to bind a port another ` +
      `process holds), and the search walks up from the bottom of PORT_RANGE past every claimed port. The last batch of a ` +
      `200-parallel round: ${r.levels.map((l) => `${ms(last('plan')(l))} ms for ${changes(l)} changes at ${count(l.plan.level)}`).join(', ')}.`,
    `3. **Durability per batch (group commit)**: \`stage\` writes each file without flushing it; \`swap\` writes the ` +
      `batch's journal (every file's old and new text) and flushes it once, then renames; \`commit\` appends the commit ` +
      `mark and flushes it, and the live files are flushed in the background, so an acknowledged change survives a power cut. ` +
      `The last 200-parallel batch: \`stage\` ${r.levels.map((l) => `${ms(last('stage')(l))} ms for ${changes(l)} files at ${count(l.plan.level)}`).join(', ')}; ` +
      `\`swap\` ${perLevel(r, last('swap'))}; \`commit\` ${perLevel(r, last('commit'))}. What still grows with ` +
      `the changes at ${count(first.plan.level)} streams is here and in \`plan\`.`,
    `4. **\`nginx -t\` itself grows faster than the tree** (nginx, not Portico): the floor's bare \`nginx -t\` took ` +
      `${perLevel(r, (l) => med(l.floor.map((f) => f.testMs)))}; Portico's \`test\` phase follows it ` +
      `(${perLevel(r, single('test'))}), as its \`reload\` follows the floor's HUP → echo.`,
  ];
  return lines;
}

/** The memory section: this run's figures, and how they were explained. */
export function memorySection(r: Results): string {
  const [shipped, defaults] = r.restarts;
  const top = r.levels.at(-1);
  return `Portico runs as \`${nodeCommand(r.nodeArgs)}\` (\`make start\`, \`npm start\`, the container and this benchmark alike, through
\`bin/portico\`). In this run it held ${mb(r.idle.rssMb)} MB idle with no stream,
${mb(r.levels[0]?.memory.rssMb ?? Number.NaN)} MB after the few hundred requests of the 0-stream rung (still no stream), and
${mb(top?.memory.rssMb ?? Number.NaN)} MB (peak ${mb(top?.memory.peakMb ?? Number.NaN)} MB) at ${count(top?.plan.level ?? 0)} streams. Restarted on the same tree
and given the same kind of traffic it held ${mb(shipped?.memory.rssMb ?? Number.NaN)} MB as shipped, and
${mb(defaults?.memory.rssMb ?? Number.NaN)} MB with node's default heap sizing (\`${nodeCommand(defaults?.nodeArgs ?? [])}\`). A smaller heap
means more garbage collection, so watch latency: as shipped, the 200-parallel round took ${ms(shipped?.parallel.wallMs ?? Number.NaN)} ms
against ${ms(defaults?.parallel.wallMs ?? Number.NaN)} ms with the defaults, and \`GET /v1/streams\` had a p90 of ${ms(p90(shipped?.queries.v1streams ?? []))} ms
against ${ms(p90(defaults?.queries.v1streams ?? []))} ms (one round and 20 queries each: noisy).

Why the flags (diagnosed once by hand, 2026-11-22, not re-measured by \`make bench\`): Portico started in-process on a
5,000-stream tree under \`node --expose-gc\`, read with \`process.memoryUsage()\`, \`v8.getHeapSpaceStatistics()\` and
\`/proc/self/smaps\`. After a forced full GC the JavaScript heap in use was 17 MB with the 5,000 streams parsed and
cached, against 12 MB with none: about 1 KB per stream. But parsing 5,000 files (at start, or in a scan) and
answering thousands of requests allocate fast, so V8 grows its young generation to the 16 MB semi-space maximum
(33.6 MB committed, and kept) and lets garbage collect in the old generation until a major GC, which it has little
reason to run on a machine with 23 GB; resident were ~46 MB of V8 heap pages, ~38 MB of the node binary's code and
~20 MB of malloc heap. \`--max-semi-space-size=2\` caps the young generation; \`--max-old-space-size=256\` makes V8
collect the old generation well before it would on its own, and leaves ten times the live heap as room. A tighter
\`--max-old-space-size=64\` was tried by hand: 85 MB, but list queries at 5,000 streams went from 7-9 ms to 13-15 ms.`;
}
