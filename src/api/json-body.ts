/**
 * Request bodies: `application/json` only, parsed strictly. A browser sends a cross-site body
 * without asking first only as text/plain, a url-encoded or a multipart form, so refusing every other
 * type (415) takes away the body of a form post or a no-cors fetch; scripts send the header anyway.
 * An empty body needs no type (node's fetch sends `Content-Length: 0` with a bodiless POST).
 */
import express, { type RequestHandler } from 'express';
import { PorticoError, invalidInput } from '../errors.js';
import { BODY_LIMIT_KB } from './errors.js';
import { findDuplicateKey } from './json-keys.js';

/** True when the request carries body bytes: a chunked body, or a Content-Length above zero. */
function hasBody(headers: { 'transfer-encoding'?: string; 'content-length'?: string }): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && !/^0+$/.test(length);
}

const requireJsonType: RequestHandler = (req, _res, next) => {
  // req.is answers false for a missing or malformed Content-Type (e.g. `application/json, text/plain`).
  if (hasBody(req.headers) && req.is('application/json') !== 'application/json') {
    const sent = req.get('content-type');
    const was = sent === undefined ? 'none was given' : `it is ${JSON.stringify(sent.slice(0, 100))}`;
    throw new PorticoError('UnsupportedMediaType', `Content-Type: a body must be application/json (${was})`, { field: 'Content-Type' });
  }
  next();
};

/** Where a duplicate sits, for a message: `upstreams.0`, or "the body" at the top. */
const dotted = (path: (string | number)[]): string => path.map(String).join('.');

const parseStrictJson: RequestHandler = (req, _res, next) => {
  const text: unknown = req.body;
  if (typeof text !== 'string') {
    next();
    return;
  }
  // body-parser's json gave an empty body as {} (the routes' default); keep that.
  if (text.trim() === '') {
    req.body = {};
    next();
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidInput('body', 'is not valid JSON');
  }
  if (value === null || typeof value !== 'object') throw invalidInput('body', 'must be a JSON object');
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    const field = dotted([...duplicate.path, duplicate.key]);
    const where = duplicate.path.length === 0 ? 'the body' : `the object at ${dotted(duplicate.path)}`;
    const key = JSON.stringify(duplicate.key.length > 64 ? `${duplicate.key.slice(0, 64)}…` : duplicate.key);
    throw new PorticoError(
      'InvalidInput',
      `${field}: the key ${key} appears twice in ${where} (at characters ${duplicate.first} and ${duplicate.second}); bodies are strict: each key once`,
      { field },
    );
  }
  req.body = value;
  next();
};

/** The body middlewares, in order: the type check, reading (size-limited, decoded), strict parsing. */
export function jsonBody(): RequestHandler[] {
  return [requireJsonType, express.text({ type: 'application/json', limit: `${BODY_LIMIT_KB}kb`, defaultCharset: 'utf-8' }), parseStrictJson];
}
