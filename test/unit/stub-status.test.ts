/**
 * stub_status's page as /metrics reads it: the parse of nginx's text, and a read that answers
 * nothing (never throws, never waits past its bound) when the page is not one.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseStubStatus, readStubStatus } from '../../src/metrics/stub-status.js';

// As nginx 1.30 writes it (ngx_http_stub_status_module.c): trailing spaces included.
const PAGE = 'Active connections: 3 \nserver accepts handled requests\n 1024 1023 4096 \nReading: 0 Writing: 1 Waiting: 2 \n';

describe('stub_status', () => {
  it('reads nginx\'s page into its seven numbers', () => {
    assert.deepEqual(parseStubStatus(PAGE), { active: 3, accepted: 1024, handled: 1023, requests: 4096, reading: 0, writing: 1, waiting: 2 });
  });

  it('answers nothing for a page that is not stub_status\'s', () => {
    for (const text of ['', '<html>404</html>', PAGE.replace('1024', '-1'), PAGE.replace('Waiting: 2', 'Waiting: two'), `${PAGE}extra\n`, PAGE.slice(0, 40)]) {
      assert.equal(parseStubStatus(text), undefined, JSON.stringify(text));
    }
  });

  it('answers nothing for a number longer than nginx\'s 64-bit counters can be (it would be Infinity: +Inf on /metrics), and reads the longest they can', () => {
    for (const digits of [21, 400]) {
      assert.equal(parseStubStatus(PAGE.replace('4096', '9'.repeat(digits))), undefined, `${digits} digits`);
      assert.equal(parseStubStatus(PAGE.replace('Active connections: 3', `Active connections: ${'9'.repeat(digits)}`)), undefined, `${digits} digits`);
    }
    // 2^64 - 1: a finite number, if not an exact one.
    const max = parseStubStatus(PAGE.replace('4096', '18446744073709551615'));
    assert.ok(max !== undefined && Number.isFinite(max.requests) && max.requests > 1.8e19);
  });

  describe('read over HTTP', () => {
    let server: Server;
    let base: string;
    before(async () => {
      server = createServer((req, res) => {
        if (req.url === '/ok') res.end(PAGE);
        else if (req.url === '/forbidden') res.writeHead(403).end(PAGE);
        else if (req.url === '/huge') res.end('x'.repeat(100_000));
        // /hang: never answers.
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('answers the numbers of a 200 page', async () => {
      assert.equal((await readStubStatus(`${base}/ok`, 1000))?.requests, 4096);
    });

    it('answers nothing for another status, an oversized page, a closed port, or no answer within the bound', async () => {
      assert.equal(await readStubStatus(`${base}/forbidden`, 1000), undefined);
      assert.equal(await readStubStatus(`${base}/huge`, 1000), undefined);
      assert.equal(await readStubStatus('http://127.0.0.1:1/stub_status', 1000), undefined);
      const started = Date.now();
      assert.equal(await readStubStatus(`${base}/hang`, 200), undefined);
      const took = Date.now() - started;
      assert.ok(took >= 190 && took < 1000, `took ${took} ms`);
    });
  });
});
