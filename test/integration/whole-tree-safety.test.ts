/**
 * Errors only the whole tree shows, under both test scopes (issue 13, goal 3). By default a batch
 * tests only what it writes, on a throwaway config, and the master's parse at the reload is the
 * whole-tree test; FULL_TREE_TEST=true tests the whole staged tree before the swap. Each case is a
 * change made behind Portico's back that no file Portico writes shows on its own: a hand-made
 * include that claims a stream's port (nginx ≥ 1.25.5 only warns that it ignores one of the two
 * servers, which Portico refuses as an error), a server name too long for the hash Portico sized,
 * and a certificate file deleted. Under either scope the next change answers 422 with nginx's own
 * line, leaves the files as they were, and nginx keeps serving what it served. Only the place the
 * error is caught differs: at the reload (`changed`) or at `nginx -t` (`tree`).
 * Uses 127.0.0.1 ports 28800-28811 (scope `changed`), 28820-28831 (scope `tree`) and 28840-28901
 * (a large batch).
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { fixtureCert, fixturePem } from '../helpers/backends.js';
import { roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { isJournalFile, nginxMasters, startInProcess, type InProcess } from '../helpers/portico.js';
import { httpGet, httpsGet, seenBy, startHttpBackend, type HttpBackend } from '../helpers/tls-http.js';

const CA = fixturePem('ca.crt');
const B = fixtureCert('b');

const SCOPES = [
  { scope: 'changed', env: 'false', base: 28800, caughtBy: /swapping and reloading: nginx (refused the new config|took the new config but ignores a server of it): / },
  { scope: 'tree', env: 'true', base: 28820, caughtBy: /testing config: / },
] as const;

/** Every file of the config directories and the certificates, by directory: what a refused change must leave as it was. */
async function files(portico: InProcess): Promise<Record<string, string[]>> {
  const { streamDir, httpDir, certDir } = portico.settings;
  const list = async (dir: string) => (await readdir(dir).catch(() => [])).filter((name) => !isJournalFile(name)).sort();
  return { streams: await list(streamDir), http: await list(httpDir), certs: await list(certDir) };
}

describe('a large batch tests only what changed', () => {
  // 60 tcp+udp streams open 120 listening sockets: the throwaway config must allow as many as the live one.
  it('60 tcp+udp streams created at once pass the changed files\' test and each echoes over TCP', async () => {
    const echo = await startEcho();
    const portico = await startInProcess({ PORT_RANGE: '28840-28899', HTTP_PORT: '28900', HTTPS_PORT: '28901' });
    try {
      const upstreams = [{ address: `127.0.0.1:${echo.port}` }];
      const ports = Array.from({ length: 60 }, (_, i) => 28840 + i);
      const answers = await Promise.all(ports.map((port) => request(portico.app).post('/v1/streams').send({ port, protocol: 'tcp+udp', upstreams })));
      assert.deepEqual(answers.map((a) => a.status), ports.map(() => 201), JSON.stringify(answers.find((a) => a.status !== 201)?.body));
      for (const port of ports) assert.equal(await roundTrip(port, `to ${port}`), `to ${port}`);
    } finally {
      await portico.stop();
      await echo.close();
    }
  });
});

for (const { scope, env, base, caughtBy } of SCOPES) {
  describe(`errors only the whole tree shows, FULL_TREE_TEST=${env} (scope ${scope})`, () => {
    const HTTP_PORT = base + 10;
    const HTTPS_PORT = base + 11;
    let portico: InProcess;
    let echo: EchoServer;
    let web: HttpBackend;
    const api = () => request(portico.app);

    before(async () => {
      echo = await startEcho();
      web = await startHttpBackend('web');
      portico = await startInProcess({
        PORT_RANGE: `${base}-${base + 9}`,
        HTTP_PORT: `${HTTP_PORT}`,
        HTTPS_PORT: `${HTTPS_PORT}`,
        FULL_TREE_TEST: env,
        WORKER_SHUTDOWN_TIMEOUT: '3s',
      });
      assert.equal(portico.settings.testScope, scope);
      // What every case checks is still served: a stream, a plain app and an HTTPS app.
      await api().post('/v1/streams').send({ port: base, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }).expect(201);
      await api().post('/v1/certificates').send({ id: 'wild-b', certificate: B.cert, key: B.key }).expect(201);
      const routes = [{ upstreams: [{ address: `127.0.0.1:${web.port}` }] }];
      await api().post('/v1/apps').send({ name: 'plain', serverNames: ['plain.example.com'], routes }).expect(201);
      await api().post('/v1/apps').send({ name: 'secure', serverNames: ['shop.b.example.com'], routes, tls: { certificate: 'wild-b' } }).expect(201);
    });
    after(async () => {
      try {
        await portico?.stop();
      } finally {
        await Promise.all([echo?.close(), web?.close()]);
      }
    });

    /** The stream and both apps answer through nginx, and nginx's master is the one that ran before. */
    async function stillServed(master: number): Promise<void> {
      assert.equal(await roundTrip(base, 'ping'), 'ping');
      assert.equal(seenBy(await httpGet(HTTP_PORT, { host: 'plain.example.com' }))?.who, 'web');
      const secure = await httpsGet(HTTPS_PORT, { servername: 'shop.b.example.com', ca: CA });
      assert.equal(seenBy(secure)?.who, 'web');
      assert.deepEqual(await nginxMasters(portico.stateDir), [master]);
    }

    /** Runs `change` with `handEdit` in place: 422 naming `line`, caught where the scope says, nothing written, all still served. */
    async function refusedBehindOurBack(
      handEdit: { make(): Promise<void>; undo(): Promise<void> },
      change: () => request.Test,
      line: RegExp,
    ): Promise<void> {
      const [master] = await nginxMasters(portico.stateDir);
      assert.ok(master !== undefined, 'no nginx master runs');
      await stillServed(master);
      await handEdit.make();
      try {
        const before = await files(portico);
        const res = await change().expect(422);
        const error = res.body.error as { kind: string; message: string; nginx: string[] };
        assert.equal(error.kind, 'NginxRejected');
        assert.match(error.message, caughtBy);
        assert.ok(
          error.nginx.some((l) => line.test(l)),
          `nginx's lines do not say ${line}: ${JSON.stringify(error.nginx)}`,
        );
        assert.deepEqual(await files(portico), before, 'the refused change left files behind');
        await stillServed(master);
        const status = (await api().get('/v1/status').expect(200)).body as { lastApply: { outcome: string } };
        assert.equal(status.lastApply.outcome, scope === 'changed' ? 'rolled-back' : 'rejected');
      } finally {
        await handEdit.undo();
      }
      // With the hand edit undone, the same tree applies again.
      await api().put('/v1/streams/' + (base + 9)).send({ upstreams: [{ address: `127.0.0.1:${echo.port}` }] }).expect(201);
      assert.equal(await roundTrip(base + 9, 'again'), 'again');
      await api().delete('/v1/streams/' + (base + 9)).expect(204);
    }

    it('a hand-made file claims a stream port through an include: creating a stream on it answers 422 with nginx\'s "conflicting server name" line', async () => {
      const outside = path.join(portico.stateDir, 'hand', 'other.conf');
      const hand = path.join(portico.settings.streamDir, 'zz-hand.conf');
      const port = base + 5;
      await refusedBehindOurBack(
        {
          async make() {
            await mkdir(path.dirname(outside), { recursive: true });
            // Portico reads the listens of a foreign file in its directory, not of what that file includes.
            await writeFile(outside, `server {\n    listen ${port};\n    return "hand-made\\n";\n}\n`);
            await writeFile(hand, `include ${outside};\n`);
          },
          async undo() {
            await rm(hand, { force: true });
          },
        },
        () => api().post('/v1/streams').send({ port, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }),
        new RegExp(`conflicting server name "" on 0\\.0\\.0\\.0:${port}, ignored`),
      );
      await api().get(`/v1/streams/${port}`).expect(404);
    });

    it('a hand-made server with a name longer than the hash Portico sized: adding an app answers 422 with "could not build server_names_hash"', async () => {
      const hand = path.join(portico.settings.httpDir, 'zz-hand.conf');
      // 200 characters: nginx's bucket must hold it, and Portico sized the bucket for its apps' short names.
      const name = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(14)}.example`;
      await refusedBehindOurBack(
        {
          async make() {
            await writeFile(hand, `server {\n    listen ${HTTP_PORT};\n    server_name ${name};\n    return 200;\n}\n`);
          },
          async undo() {
            await rm(hand, { force: true });
          },
        },
        () => api().post('/v1/apps').send({ name: 'late', serverNames: ['late.example.com'], routes: [{ upstreams: [{ address: `127.0.0.1:${web.port}` }] }] }),
        /could not build server_names_hash, you should increase server_names_hash_bucket_size/,
      );
      await api().get('/v1/apps/late').expect(404);
    });

    it('a hand-made server already names the host: adding an app for it answers 422 with nginx\'s "conflicting server name" line', async () => {
      const hand = path.join(portico.settings.httpDir, 'zz-hand.conf');
      await refusedBehindOurBack(
        {
          async make() {
            await writeFile(hand, `server {\n    listen ${HTTP_PORT};\n    server_name late.example.com;\n    return 200 "hand-made";\n}\n`);
          },
          async undo() {
            await rm(hand, { force: true });
          },
        },
        () => api().post('/v1/apps').send({ name: 'late', serverNames: ['late.example.com'], routes: [{ upstreams: [{ address: `127.0.0.1:${web.port}` }] }] }),
        new RegExp(`conflicting server name "late\\.example\\.com" on 0\\.0\\.0\\.0:${HTTP_PORT}, ignored`),
      );
      await api().get('/v1/apps/late').expect(404);
    });

    it('a certificate file deleted behind Portico\'s back: adding an app answers 422 with "cannot load certificate", and HTTPS keeps serving', async () => {
      const crt = path.join(portico.settings.certDir, 'wild-b.crt');
      await refusedBehindOurBack(
        {
          async make() {
            await rm(crt);
          },
          async undo() {
            await writeFile(crt, B.cert, { mode: 0o644 });
          },
        },
        () => api().post('/v1/apps').send({ name: 'late', serverNames: ['late.example.com'], routes: [{ upstreams: [{ address: `127.0.0.1:${web.port}` }] }] }),
        /cannot load certificate ".*wild-b\.crt"/,
      );
      await api().get('/v1/apps/late').expect(404);
    });
  });
}
