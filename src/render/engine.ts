/**
 * Handlebars set-up. Templates are compiled once, with `noEscape` (nginx is not HTML) and `strict`
 * (a missing value is an error, never an empty string), and can print values only through helpers
 * that refuse anything outside the alphabet of the value's schema: the last line of defence against
 * config injection, behind the `model/` schemas. Pure: the template texts are handed in.
 */
import Handlebars from 'handlebars';
import {
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  NAME_PATTERN,
  PATH_PATTERN,
  TIME_PATTERN,
  isAddress,
  isCidr,
  isHostname,
  isListenHost,
  isPortText,
  isServerName,
} from '../model/net.js';
import { APP_NAME_PATTERN, isHeaderName, isHeaderValue, isSize, isUrlPath } from '../model/app.js';

export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RenderError';
  }
}

function guard(helper: string, pattern: (value: string) => boolean) {
  return (value: unknown): string => {
    const text = typeof value === 'number' ? String(value) : value;
    if (typeof text !== 'string' || !pattern(text)) {
      throw new RenderError(`refusing to render ${JSON.stringify(value)} as ${helper}`);
    }
    return text;
  };
}

/** The helpers, by name; each prints its value only if the value matches the helper's pattern. */
export const helpers = {
  port: guard('port', isPortText),
  address: guard('address', isAddress),
  name: guard('name', (v) => NAME_PATTERN.test(v)),
  path: guard('path', (v) => PATH_PATTERN.test(v) && !v.split('/').includes('..')),
  /** A file, or a directory's `*.conf` glob, for `include`. */
  include: guard('include', (v) => {
    const file = v.endsWith('/*.conf') ? v.slice(0, -'/*.conf'.length) : v;
    return PATH_PATTERN.test(file) && !file.split('/').includes('..');
  }),
  int: guard('int', (v) => /^\d{1,9}$/.test(v)),
  time: guard('time', (v) => TIME_PATTERN.test(v)),
  /** The subject of an `allow` or `deny`. */
  cidr: guard('cidr', isCidr),
  /** A TLS server name to route by (a map key under `hostnames`). */
  servername: guard('servername', isServerName),
  hostname: guard('hostname', isHostname),
  /** The address part of a `listen`. */
  listenhost: guard('listenhost', isListenHost),
  /** `name=value` of a label, in a comment. */
  label: guard('label', (v) => {
    const [key = '', ...value] = v.split('=');
    return LABEL_KEY_PATTERN.test(key) && value.length === 1 && LABEL_VALUE_PATTERN.test(value[0] as string);
  }),
  appname: guard('appname', (v) => APP_NAME_PATTERN.test(v)),
  /** A location's path prefix. */
  urlpath: guard('urlpath', isUrlPath),
  /**
   * A `rewrite` regex built from a path prefix: `^`, the path with "." escaped, then `$`, `(.*)$` or
   * `(/.*)$`; or `^(/.*)$`, the root prefix without its "/".
   */
  rewriteregex: guard('rewriteregex', (v) => /^\^(?:\/(?:[A-Za-z0-9_~\/-]|\\\.)*(?:\(\.\*\)|\(\/\.\*\))?|\(\/\.\*\))\$$/.test(v)),
  /** A `rewrite` replacement: a path, optionally followed by the capture `$1`, or `$1` (which starts with "/"). */
  rewritetarget: guard('rewritetarget', (v) => /^(?:\/[A-Za-z0-9._~\/-]*(?:\$1)?|\$1)$/.test(v)),
  size: guard('size', isSize),
  headername: guard('headername', isHeaderName),
  /** A header value, printed inside double quotes. */
  headervalue: guard('headervalue', isHeaderValue),
  /** `field.path=value` of a field given with its default value, in a comment. */
  /** A traffic log_format (src/traffic/line.ts): a tag, then nginx variables separated by spaces. */
  logformat: guard('logformat', (v) => /^[a-z0-9]{1,8}(?: \$[a-z_]{1,32}){1,16}$/.test(v)),
  annotation: guard('annotation', (v) => /^[a-z][A-Za-z0-9_.]{0,200}=[a-z_]{1,20}$/.test(v)),
};

export type Template<View> = (view: View) => string;

/** Compiles one template in a private Handlebars environment that knows only our helpers. */
export function compileTemplate<View>(source: string): Template<View> {
  const env = Handlebars.create();
  for (const [name, helper] of Object.entries(helpers)) env.registerHelper(name, helper);
  const template = env.compile(source, { noEscape: true, strict: true, knownHelpersOnly: true, knownHelpers: Object.fromEntries(Object.keys(helpers).map((k) => [k, true])) });
  return (view: View) => template(view);
}
