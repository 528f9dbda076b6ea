/**
 * The stream resource: a port on the nginx edge whose TCP connections are proxied to upstreams.
 *
 * `streamInputSchema` is the only parser of outside input for streams; what passes it is a `Stream`,
 * trusted by every layer below the API.
 */
import { z } from 'zod';
import { addressSchema, portSchema } from './net.js';

export const upstreamSchema = z
  .object({
    address: addressSchema,
  })
  .strict();
export type Upstream = z.infer<typeof upstreamSchema>;

/** How many upstreams one stream may have (nginx has no limit; this bounds the file we write). */
export const MAX_UPSTREAMS = 64;

export const streamSchema = z
  .object({
    port: portSchema,
    upstreams: z
      .array(upstreamSchema, { invalid_type_error: 'must be an array of {"address": "host:port"}' })
      .min(1, 'must hold at least one upstream')
      .max(MAX_UPSTREAMS, `must hold at most ${MAX_UPSTREAMS} upstreams`),
  })
  .strict();
/** A stream as stored: the port it listens on and where its connections go. */
export type Stream = z.infer<typeof streamSchema>;

/**
 * A stream as a caller may write it: `port` may be left for Portico to allocate, and `backend:
 * "host:port"` is shorthand for one upstream. Exactly one of `upstreams` and `backend` is required.
 */
export const streamInputSchema = z
  .object({
    port: portSchema.optional(),
    upstreams: streamSchema.shape.upstreams.optional(),
    backend: addressSchema.optional(),
  })
  .strict()
  .superRefine((input, ctx) => {
    if (input.upstreams === undefined && input.backend === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['upstreams'], message: 'is required (or "backend")' });
    }
    if (input.upstreams !== undefined && input.backend !== undefined) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['backend'],
        message: 'cannot be given together with "upstreams"',
      });
    }
  });
export type StreamInput = z.infer<typeof streamInputSchema>;

/** A stream's content without its port: what a caller asks for before a port is allocated. */
export type StreamSpec = Omit<Stream, 'port'>;

/** Turns validated input into the stored form (always the full `upstreams` form). */
export function specFromInput(input: StreamInput): StreamSpec {
  const upstreams = input.upstreams ?? [{ address: input.backend as string }];
  return { upstreams: upstreams.map((u) => ({ address: u.address })) };
}

/** Name of the nginx upstream group of a stream that has more than one upstream. */
export function upstreamGroupName(port: number): string {
  return `portico_stream_${port}`;
}

/** True when two streams would render the same file. */
export function sameStream(a: Stream, b: Stream): boolean {
  return (
    a.port === b.port &&
    a.upstreams.length === b.upstreams.length &&
    a.upstreams.every((u, i) => u.address === b.upstreams[i]?.address)
  );
}
