/**
 * Renders a stream into the text of its file. Pure: decisions are made here, in a flat view, and
 * `templates/stream.conf.hbs` only prints it.
 */
import { upstreamGroupName, type Stream } from '../model/stream.js';
import { compileTemplate, type Template } from './engine.js';

export interface StreamView {
  port: number;
  /** An upstream group, when there is more than one upstream. */
  group?: { name: string; servers: string[] };
  /** The single upstream, proxied to directly (the form stream-conductor wrote). */
  proxyPass?: string;
}

export function streamView(stream: Stream): StreamView {
  const [first, ...rest] = stream.upstreams;
  if (first !== undefined && rest.length === 0) return { port: stream.port, proxyPass: first.address };
  return {
    port: stream.port,
    group: { name: upstreamGroupName(stream.port), servers: stream.upstreams.map((u) => u.address) },
  };
}

export type StreamRenderer = (stream: Stream) => string;

/** Compiles the stream template once; the returned function renders one stream per call. */
export function createStreamRenderer(source: string): StreamRenderer {
  const template: Template<StreamView> = compileTemplate(source);
  return (stream) => template(streamView(stream));
}
