/**
 * fast-check generators of valid model values, covering the whole schema: every field, every
 * protocol and balancing method, SNI routes, TLS both ways, access rules, labels.
 */
import fc from 'fast-check';
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
