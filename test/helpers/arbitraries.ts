/**
 * fast-check generators of valid model values, covering the whole schema.
 */
import fc from 'fast-check';
import { MAX_UPSTREAMS, type Stream } from '../../src/model/stream.js';

const label = fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?$/);
/** Names with at least one letter somewhere, so they are never read as an IPv4 address. */
const hostname = fc
  .array(label, { minLength: 1, maxLength: 4 })
  .map((labels) => labels.join('.'))
  .filter((name) => /[A-Za-z-]/.test(name));
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6().map((a) => `[${a}]`);
const port = fc.integer({ min: 1, max: 65535 });

export const addressArbitrary = fc
  .tuple(fc.oneof(hostname, ipv4, ipv6), port)
  .map(([host, p]) => `${host}:${p}`);

const plain = { noNullPrototype: true } as const;

export const streamArbitrary: fc.Arbitrary<Stream> = fc.record(
  {
    port,
    upstreams: fc.array(fc.record({ address: addressArbitrary }, plain), { minLength: 1, maxLength: Math.min(MAX_UPSTREAMS, 8) }),
  },
  plain,
);
