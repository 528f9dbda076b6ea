/**
 * Reads one `location` block of an app's server: its path, its `rewrite`, and either the proxying of
 * a route or the `return 404` of a path no route serves, with the Alt-Svc header of HTTP/3. Pure.
 *
 * Every directive must be one the renderer writes, once, with the arguments it writes. Their order
 * is not checked, except for the `proxy_set_header`s (checked as one list) and the user's headers
 * (the order they are sent in and stored in).
 */
import { CACHE_CREDENTIALS_VARIABLE } from '../model/app.js';
import { proxyHeaderValue, proxyHeaders, type ProxyHeader } from '../model/app-file.js';
import { fail, flag, single, type Directive } from './directive.js';

export interface ProxyRead {
  https: boolean;
  group: string;
  websocket: boolean;
  cacheTtl?: string;
  /** True when a cached location serves and stores answers to requests with credentials too. */
  cacheSharesAuthenticated?: boolean;
  maxBodySize?: string;
  /** The user's headers, in file order. */
  headers: Array<[string, string]>;
  /** The variable of `add_header Set-Cookie $VAR`, for a sticky route. */
  setCookie?: string;
}

export interface LocationRead {
  line: number;
  exact: boolean;
  path: string;
  rewrite?: { regex: string; replacement: string; line: number };
  /** Undefined for `return 404`. */
  proxy?: ProxyRead;
  altSvc?: { port: number; maxAge?: number; line: number };
}

const ONCE = new Set([
  'rewrite',
  'return',
  'client_max_body_size',
  'proxy_pass',
  'proxy_http_version',
  'proxy_ssl_server_name',
  'proxy_ssl_name',
  'proxy_cache',
  'proxy_cache_key',
  'proxy_cache_valid',
  'proxy_cache_bypass',
  'proxy_no_cache',
]);

const ALT_SVC = /^h3=":(\d{1,5})"(?:; ma=(0|[1-9]\d{0,8}))?$/;

function expectArgs(directive: Directive, args: string[]): void {
  if (directive.block !== undefined || directive.args.join('\0') !== args.join('\0') || directive.args.length !== args.length) {
    fail(`"${directive.name}" must read "${[directive.name, ...args.map((a) => (a === '' || /\s/.test(a) ? JSON.stringify(a) : a))].join(' ')}"`, directive);
  }
}

function readHeaders(sets: Directive[], location: Directive, where: string): boolean {
  const got = sets.map((d) => {
    if (d.block !== undefined || d.args.length !== 2) fail('"proxy_set_header" must have a name and a value', d);
    return d.args as [string, string];
  });
  const matches = (websocket: boolean): boolean => {
    const want = proxyHeaders(websocket);
    return got.length === want.length && got.every(([n, v], i) => n === want[i]?.name && v === proxyHeaderValue(want[i] as ProxyHeader));
  };
  if (matches(true)) return true;
  if (matches(false)) return false;
  // The list to name in the error: a WebSocket route's when the file sets a header only it sets (Upgrade).
  const plain = new Set(proxyHeaders(false).map((h) => h.name));
  const want = proxyHeaders(got.some(([name]) => !plain.has(name) && proxyHeaders(true).some((h) => h.name === name)));
  fail(`${where} must set the request headers ${want.map((h) => `${h.name} ${h.variable === null ? '""' : proxyHeaderValue(h)}`).join(', ')}, in this order`, location);
}

/** Reads `location [=] PATH { ... }`. */
export function readLocation(location: Directive): LocationRead {
  const [first, second, ...more] = location.args;
  const exact = first === '=';
  const path = exact ? second : first;
  if (location.block === undefined || path === undefined || more.length > 0 || (!exact && second !== undefined)) {
    fail('a location must read "location PATH {" or "location = PATH {"', location);
  }
  const where = `location ${exact ? '= ' : ''}${path}`;
  const once = new Map<string, Directive>();
  const sets: Directive[] = [];
  const headers: Array<[string, string]> = [];
  let cacheStatus: Directive | undefined;
  let setCookie: Directive | undefined;
  let altSvc: LocationRead['altSvc'];
  for (const inner of location.block) {
    if (inner.name === 'proxy_set_header') sets.push(inner);
    else if (inner.name === 'add_header') {
      const [name = '', value = '', always] = inner.args;
      const alt = ALT_SVC.exec(value);
      if (inner.block !== undefined) fail('"add_header" takes no block', inner);
      else if (name === 'Alt-Svc' && alt !== null && always === 'always' && inner.args.length === 3 && altSvc === undefined) {
        altSvc = { port: Number(alt[1]), ...(alt[2] !== undefined && { maxAge: Number(alt[2]) }), line: inner.line };
      } else if (name === 'X-Cache-Status' && value === '$upstream_cache_status' && always === 'always' && cacheStatus === undefined) {
        cacheStatus = inner;
      } else if (name === 'Set-Cookie' && value.startsWith('$') && inner.args.length === 2 && setCookie === undefined) {
        setCookie = inner;
      } else if (inner.args.length === 3 && always === 'always') {
        if (headers.some(([n]) => n === name)) fail(`add_header ${name} is given twice in ${where}`, inner);
        headers.push([name, value]);
      } else {
        fail('"add_header" must read add_header NAME "VALUE" always', inner);
      }
    } else if (ONCE.has(inner.name)) {
      if (once.has(inner.name)) fail(`"${inner.name}" is given twice in ${where}`, inner);
      once.set(inner.name, inner);
    } else {
      fail(`unexpected "${inner.name}" in ${where}`, inner);
    }
  }
  const rewriteDirective = once.get('rewrite');
  let rewrite: LocationRead['rewrite'];
  if (rewriteDirective !== undefined) {
    const [regex = '', replacement = '', last] = rewriteDirective.args;
    if (rewriteDirective.block !== undefined || rewriteDirective.args.length !== 3 || last !== 'break') {
      fail('"rewrite" must read "rewrite REGEX REPLACEMENT break"', rewriteDirective);
    }
    rewrite = { regex, replacement, line: rewriteDirective.line };
  }
  const base = { line: location.line, exact, path, ...(rewrite !== undefined && { rewrite }), ...(altSvc !== undefined && { altSvc }) };

  const returned = once.get('return');
  if (returned !== undefined) {
    expectArgs(returned, ['404']);
    const extra = [...once.keys()].find((k) => k !== 'return' && k !== 'rewrite') ?? (sets.length > 0 ? 'proxy_set_header' : undefined);
    if (extra !== undefined || headers.length > 0 || cacheStatus !== undefined || setCookie !== undefined) {
      fail(`${where} answers 404: it must hold nothing else than the Alt-Svc header`, location);
    }
    if (rewrite !== undefined) fail(`${where} answers 404: it has nothing to rewrite`, rewriteDirective);
    return base;
  }
  return { ...base, proxy: readProxy(location, where, once, sets, headers, cacheStatus, setCookie) };
}

function readProxy(
  location: Directive,
  where: string,
  once: Map<string, Directive>,
  sets: Directive[],
  headers: Array<[string, string]>,
  cacheStatus: Directive | undefined,
  setCookie: Directive | undefined,
): ProxyRead {
  const pass = once.get('proxy_pass');
  if (pass === undefined) fail(`${where} has neither proxy_pass nor "return 404"`, location);
  const target = /^(https?):\/\/([A-Za-z0-9_]+)$/.exec(single(pass));
  if (target === null) fail('"proxy_pass" must read "proxy_pass http://GROUP" or "proxy_pass https://GROUP"', pass);
  const https = target[1] === 'https';
  const version = once.get('proxy_http_version');
  if (version === undefined) fail(`${where} must hold "proxy_http_version 1.1"`, location);
  expectArgs(version, ['1.1']);
  const websocket = readHeaders(sets, location, where);

  const sni = once.get('proxy_ssl_server_name');
  const sslName = once.get('proxy_ssl_name');
  if (https !== (sni !== undefined) || https !== (sslName !== undefined) || (sni !== undefined && !flag(sni))) {
    fail(`${where}: "proxy_ssl_server_name on" and "proxy_ssl_name $host" go with "proxy_pass https://", and only then`, location);
  }
  if (sslName !== undefined) expectArgs(sslName, ['$host']);

  const cache = once.get('proxy_cache');
  const cacheKey = once.get('proxy_cache_key');
  const cacheValid = once.get('proxy_cache_valid');
  let cacheTtl: string | undefined;
  if (cache !== undefined || cacheKey !== undefined || cacheValid !== undefined || cacheStatus !== undefined) {
    if (cache === undefined || cacheKey === undefined || cacheValid === undefined || cacheStatus === undefined) {
      fail(`${where}: a cache is proxy_cache, proxy_cache_key, proxy_cache_valid and the X-Cache-Status header, all four`, location);
    }
    expectArgs(cache, ['portico_cache']);
    expectArgs(cacheKey, ['$scheme$host$request_uri']);
    const [s1, s2, s3, ttl, ...rest] = cacheValid.args;
    if (cacheValid.block !== undefined || s1 !== '200' || s2 !== '301' || s3 !== '302' || ttl === undefined || rest.length > 0) {
      fail('"proxy_cache_valid" must read "proxy_cache_valid 200 301 302 TTL"', cacheValid);
    }
    cacheTtl = ttl;
  }
  const bypass = once.get('proxy_cache_bypass');
  const noCache = once.get('proxy_no_cache');
  if ((bypass === undefined) !== (noCache === undefined) || (bypass !== undefined && cacheTtl === undefined)) {
    fail(`${where}: "proxy_cache_bypass" and "proxy_no_cache" of $${CACHE_CREDENTIALS_VARIABLE} go together, and with a cache`, bypass ?? noCache ?? location);
  }
  if (bypass !== undefined && noCache !== undefined) {
    expectArgs(bypass, [`$${CACHE_CREDENTIALS_VARIABLE}`]);
    expectArgs(noCache, [`$${CACHE_CREDENTIALS_VARIABLE}`]);
  }
  const size = once.get('client_max_body_size');
  return {
    https,
    group: target[2] as string,
    websocket,
    ...(cacheTtl !== undefined && { cacheTtl, cacheSharesAuthenticated: bypass === undefined }),
    ...(size !== undefined && { maxBodySize: single(size) }),
    headers,
    ...(setCookie !== undefined && { setCookie: (setCookie.args[1] as string).slice(1) }),
  };
}
