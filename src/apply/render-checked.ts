/**
 * Rendering with the read-back check (DESIGN invariant 3): a rendered file must parse back into the
 * very stream it came from, or it is never written. Defence in depth against config injection,
 * behind the schemas and the template helpers.
 */
import { isDeepStrictEqual } from 'node:util';
import { PorticoError } from '../errors.js';
import type { Stream, StreamFileOptions } from '../model/stream.js';
import { readStream } from '../parse/stream.js';
import type { StreamRenderer } from '../render/stream.js';

export function renderChecked(render: StreamRenderer, stream: Stream, options: StreamFileOptions): string {
  return renderReadBack(render, stream, options).text;
}

/** `renderChecked`, answering also what the text read back as (a stream equal to `stream`, not the same object). */
export function renderReadBack(render: StreamRenderer, stream: Stream, options: StreamFileOptions): { text: string; back: Stream } {
  const text = render(stream);
  let back: Stream;
  try {
    back = readStream(text, options);
  } catch (error) {
    throw new PorticoError('Internal', `rendering stream ${stream.port}: the file does not read back: ${(error as Error).message}`);
  }
  if (!isDeepStrictEqual(back, stream)) {
    throw new PorticoError('Internal', `rendering stream ${stream.port}: the file reads back as a different stream`);
  }
  return { text, back };
}
