/**
 * fast-check generators of valid model values, covering the whole schema: for streams every field,
 * every protocol and balancing method, SNI routes, TLS both ways, access rules, labels; for apps
 * every field of routes and TLS.
 */
import fc from 'fast-check';
import { APP_BALANCES, appSchema, isHeaderName, type App } from '../../src/model/app.js';
import { BALANCES, MAX_UPSTREAMS, streamSchema, type Stream, type Upstream } from '../../src/model/stream.js';

const plain = { noNullPrototype: true } as const;

const label = fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?$/);
/** Names with at least one letter somewhere, so they are never read as an IPv4 address. */
const hostname = fc
  .array(label, { minLength: 1, maxLength: 4 })
  .map((labels) => labels.join('.'))
  .filter((name) => /[A-Za-z-]/.test(name) && name.toLowerCase() !== 'unix');
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const port = fc.integer({ min: 1, max: 65535 });

export const addressArbitrary = fc.tuple(fc.oneof(hostname, ipv4, ipv6.map((a) => `[${a}]`)), port).map(([host, p]) => `${host}:${p}`);

/** A duration from 1ms to 24h in one unit. */
export const durationArbitrary = fc.oneof(
  fc.integer({ min: 1, max: 86_400_000 }).map((n) => `${n}ms`),
  fc.integer({ min: 1, max: 86_400 }).map((n) => `${n}s`),
  fc.integer({ min: 1, max: 86_400 }).map((n) => `${n}`),
  fc.integer({ min: 1, max: 1440 }).map((n) => `${n}m`),
  fc.integer({ min: 1, max: 24 }).map((n) => `${n}h`),
  fc.constant('1d'),
);

const ipv4Network = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([address, bits]) => {
  const value = address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  const network = bits === 0 ? 0 : Math.floor(value / 2 ** (32 - bits)) * 2 ** (32 - bits);
  const octets = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256);
  return `${octets.join('.')}/${bits}`;
});
export const cidrArbitrary = fc.oneof(
  fc.constant('all'),
  ipv4,
  ipv4Network,
  ipv6,
  fc.constantFrom('2001:db8::/32', '::/0', 'fe80::/10', '::1/128', 'fd00::/8'),
);

const serverName = fc
  .tuple(fc.boolean(), fc.array(label.map((l) => l.toLowerCase()), { minLength: 1, maxLength: 3 }))
  .map(([wild, labels]) => `${wild ? '*.' : ''}${labels.join('.')}.example`);

const certificateId = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);

const upstream = (backups: boolean): fc.Arbitrary<Upstream> =>
  fc.record(
    {
      address: addressArbitrary,
      weight: fc.integer({ min: 1, max: 1000 }),
      maxFails: fc.integer({ min: 0, max: 100 }),
      failTimeout: durationArbitrary,
      backup: backups ? fc.boolean() : fc.constant(false),
    },
    { ...plain, requiredKeys: ['address'] },
  );

/** At least one upstream is not a backup, as nginx needs. */
const upstreams = (backups: boolean): fc.Arbitrary<Upstream[]> =>
  fc.array(upstream(backups), { minLength: 1, maxLength: Math.min(MAX_UPSTREAMS, 6) }).map(([first, ...rest]) => {
    const { backup: _backup, ...head } = first as Upstream;
    return [head, ...rest];
  });

const labels = fc.dictionary(
  fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).filter((k) => k !== '__proto__'),
  fc.stringMatching(/^[A-Za-z0-9_.:/@-]{0,20}$/),
  { ...plain, maxKeys: 5 },
);

export const streamArbitrary: fc.Arbitrary<Stream> = fc
  .record(
    {
      protocol: fc.constantFrom('tcp', 'udp', 'tcp+udp' as const),
      balance: fc.constantFrom(...BALANCES),
      useSni: fc.boolean(),
      tlsMode: fc.constantFrom('none', 'terminate', 'originate', 'both'),
    },
    plain,
  )
  .chain(({ protocol, balance, useSni, tlsMode }) => {
    const tcp = protocol === 'tcp';
    const backups = balance !== 'hash_remote_addr' && balance !== 'random';
    const sni = fc.record(
      {
        routes: fc.uniqueArray(fc.record({ serverName, upstreams: upstreams(backups) }, plain), {
          minLength: 1,
          maxLength: 4,
          selector: (route) => route.serverName,
        }),
        default: upstreams(backups),
      },
      { ...plain, requiredKeys: ['routes'] },
    );
    const upstreamTls = fc
      .record({ serverName: hostname.map((h) => h.toLowerCase()), verify: fc.boolean(), trustedCertificate: certificateId }, { ...plain, requiredKeys: [] })
      .map((t) => (t.verify === true && (t.trustedCertificate === undefined || t.serverName === undefined) ? { ...t, verify: false } : t));
    const routed = tcp && useSni;
    const model: Record<string, fc.Arbitrary<unknown>> = {
      port,
      protocol: fc.constant(protocol),
      listenAddress: fc.oneof(ipv4, ipv6.map((a) => `[${a}]`)),
      ...(routed ? { sni } : { upstreams: upstreams(backups) }),
      balance: fc.constant(balance),
      connectTimeout: durationArbitrary,
      idleTimeout: durationArbitrary,
      allow: fc.array(cidrArbitrary, { minLength: 1, maxLength: 4 }),
      deny: fc.array(cidrArbitrary, { minLength: 1, maxLength: 4 }),
      ...(tcp && { proxyProtocol: fc.boolean() }),
      ...(tcp && !routed && (tlsMode === 'terminate' || tlsMode === 'both') && { tls: fc.record({ certificate: certificateId }, plain) }),
      ...(tcp && !routed && (tlsMode === 'originate' || tlsMode === 'both') && { upstreamTls }),
      labels,
    };
    return fc.record(model, { ...plain, requiredKeys: ['port', routed ? 'sni' : 'upstreams'] });
  })
  .map((stream) => {
    const parsed = streamSchema.safeParse(stream);
    if (!parsed.success) throw new Error(`the arbitrary made an invalid stream: ${parsed.error.message}\n${JSON.stringify(stream)}`);
    return parsed.data;
  });

/** A URL path prefix: "/" or segments, with or without a trailing "/". */
const urlPath = fc.oneof(
  { arbitrary: fc.constant('/'), weight: 1 },
  {
    arbitrary: fc
      .tuple(fc.array(fc.stringMatching(/^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,6}$/), { minLength: 1, maxLength: 3 }), fc.boolean())
      .map(([segments, slash]) => `/${segments.join('/')}${slash ? '/' : ''}`),
    weight: 4,
  },
);

/** nginx's size syntax, at most 10g. */
const size = fc.oneof(
  fc.constant('0'),
  fc.integer({ min: 1, max: 9_999_999_999 }).map(String),
  fc.integer({ min: 1, max: 10 * 1024 ** 2 }).map((n) => `${n}k`),
  fc.integer({ min: 1, max: 10 * 1024 }).map((n) => `${n}m`),
  fc.integer({ min: 1, max: 10 }).map((n) => `${n}g`),
);

/** Names the schema admits: framing and hop-by-hop headers ("TE", "Host", "Proxy-*"...) are refused. */
const headerName = fc.stringMatching(/^[A-Za-z0-9!%&*+.^_`|~-]{1,12}$/).filter(isHeaderName);
const headerValue = fc.stringMatching(/^[A-Za-z0-9 !#%&'()*+,./:;<=>?@[\]^_`|~-]{0,24}$/).filter((v) => !/^\s|\s$/.test(v));

const route = fc.record(
  {
    path: urlPath,
    replacePath: urlPath,
    upstreams: fc.array(
      fc.record({ address: addressArbitrary, weight: fc.integer({ min: 1, max: 1000 }) }, { ...plain, requiredKeys: ['address'] }),
      { minLength: 1, maxLength: 4 },
    ),
    balance: fc.constantFrom(...APP_BALANCES),
    upstreamTls: fc.boolean(),
    websocket: fc.boolean(),
    cache: fc.record({ ttl: durationArbitrary.filter((ttl) => !ttl.endsWith('ms')), shareAuthenticated: fc.boolean() }, { ...plain, requiredKeys: ['ttl'] }),
    maxBodySize: size,
    headers: fc.dictionary(headerName, headerValue, { ...plain, maxKeys: 4 }),
  },
  { ...plain, requiredKeys: ['upstreams'] },
);

/** The prefix a route serves, as the schema compares them: a route without path serves "/". */
const routeKey = (r: { path?: string }): string => (r.path ?? '/').replace(/(.)\/$/, '$1');

const appTls = fc
  .record(
    {
      certificate: certificateId,
      httpsRedirect: fc.boolean(),
      http2: fc.boolean(),
      http3: fc.boolean(),
      altSvcMaxAge: fc.integer({ min: 0, max: 31_536_000 }),
      clientCa: certificateId,
      // A certificate named by id, or the app's managed one ("acme": true); "acme": false beside an id.
      acme: fc.boolean(),
    },
    { ...plain, requiredKeys: ['certificate'] },
  )
  // The Alt-Svc max age is only for HTTP/3.
  .map(({ altSvcMaxAge, ...tls }) => (tls.http3 === true && altSvcMaxAge !== undefined ? { ...tls, altSvcMaxAge } : tls))
  .map(({ certificate, ...tls }) => (tls.acme === true ? tls : { certificate, ...tls }));

/** App names, long ones (up to the 63 characters of the schema) as often as short ones. */
const appNameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-');
const appNameEnd = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789');
const appName = fc.oneof(
  fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/),
  fc
    .tuple(appNameEnd, fc.array(appNameChar, { minLength: 40, maxLength: 61 }), appNameEnd)
    .map(([first, middle, last]) => `${first}${middle.join('')}${last}`),
);

export const appArbitrary: fc.Arbitrary<App> = fc
  .record(
    {
      name: appName,
      serverNames: fc.uniqueArray(serverName, { minLength: 1, maxLength: 4 }),
      default: fc.boolean(),
      routes: fc
        .uniqueArray(route, { minLength: 1, maxLength: 6, selector: routeKey })
        // replacePath needs a path.
        .map((routes) => routes.map(({ replacePath, ...r }) => (r.path !== undefined && replacePath !== undefined ? { ...r, replacePath } : r))),
      tls: appTls,
    },
    { ...plain, requiredKeys: ['name', 'serverNames', 'routes'] },
  )
  .map((app) => {
    const parsed = appSchema.safeParse(app);
    if (!parsed.success) throw new Error(`the arbitrary made an invalid app: ${parsed.error.message}\n${JSON.stringify(app)}`);
    return parsed.data;
  });
