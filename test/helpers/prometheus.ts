/**
 * Reading Prometheus's text format in tests: a parser of the exposition (as a scraper reads it, not
 * by string matching), and `promtool check metrics`, Prometheus's own checker, when installed
 * (`make test` installs it: scripts/install-promtool.sh).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PROMTOOL = '/usr/bin/promtool';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** `# TYPE` of each metric family. */
  types: Map<string, string>;
  /** `# HELP` of each metric family. */
  help: Map<string, string>;
}

const unescape = (text: string): string => text.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));

function parseValue(text: string): number {
  // As Prometheus reads them (Go's ParseFloat): any case; prom-client writes "Nan".
  if (/^\+?inf$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-inf$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (/^nan$/i.test(text)) return Number.NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${JSON.stringify(text)}`);
  return value;
}

/** Parses the text format (version 0.0.4); throws on a line it cannot read. */
export function parseExposition(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta !== null) {
      (meta[1] === 'HELP' ? out.help : out.types).set(meta[2] as string, meta[1] === 'HELP' ? unescape(meta[3] as string) : (meta[3] as string));
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (sample === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const body = sample[2] ?? '';
    const pair = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
    while (pair.lastIndex < body.length) {
      const match = pair.exec(body);
      if (match === null) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels[match[1] as string] = unescape(match[2] as string);
    }
    out.samples.push({ name: sample[1] as string, labels, value: parseValue(sample[3] as string) });
  }
  return out;
}

/** The value of the sample `name` whose labels are exactly `labels`; undefined when there is none. */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return exposition.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

/** Every sample called `name`. */
export function samplesOf(exposition: Exposition, name: string): Sample[] {
  return exposition.samples.filter((s) => s.name === name);
}

/** Why promtool cannot run here (undefined: it can). */
export function promtoolUnavailable(): string | undefined {
  if (existsSync(PROMTOOL)) return undefined;
  return `${PROMTOOL} is missing and installing it needs root (make test runs scripts/install-promtool.sh: apt-get install prometheus)`;
}

/** `promtool check metrics` on `text` (it reads stdin): its exit code and what it said. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}
