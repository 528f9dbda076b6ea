/**
 * A fleet of a managed node and an external one (issue 16: "every node runs Portico and its own nginx,
 * managed or external"): the external node's Portico writes into an operator's nginx it does not own,
 * tests with the same binary and signals its master. A change through the managed node is served by
 * both; the external node's Portico stopped, its nginx serves on, and restarted it catches up, the
 * operator's master never replaced.
 */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { callNode as call, startFleetNode, type FleetNode } from '../helpers/fleet.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { startTaggedServer, whoAnswers, type TaggedServer } from '../helpers/backends.js';
import { eventually } from '../helpers/net.js';
import { startOperatorNginx, type Sidecar } from '../helpers/operator-nginx.js';

const MANAGED = '127.0.0.41';
const EXTERNAL = '127.0.0.42';

describe('a fleet of a managed node and an external one', { skip: etcdUnavailable() }, () => {
  let etcd: EtcdCluster;
  let sidecar: Sidecar;
  let echo: TaggedServer;
  const nodes: FleetNode[] = [];
  let managed: FleetNode;
  let external: FleetNode;

  before(async () => {
    etcd = await startEtcdCluster({ members: 1 });
    echo = await startTaggedServer('both');
    sidecar = await startOperatorNginx();
    const httpDir = `${sidecar.root}/etc/http.d`;
    await mkdir(httpDir, { recursive: true });
    const base = { endpoints: etcd.endpoints, prefix: '/portico-external/', portRange: '30470-30479', httpPort: 30484, httpsPort: 30485 };
    managed = await startFleetNode({ ...base, name: 'managed', address: MANAGED });
    nodes.push(managed);
    external = await startFleetNode({
      ...base,
      name: 'external',
      address: EXTERNAL,
      env: {
        NGINX_MODE: 'external',
        NGINX_CONF: sidecar.conf,
        NGINX_PID_FILE: sidecar.pidFile,
        NGINX_ERROR_LOG: sidecar.errorLog,
        STREAM_CONFIG_PATH: sidecar.streamDir,
        HTTP_CONFIG_PATH: httpDir,
      },
    });
    nodes.push(external);
    const two = await eventually(async () => (await call(managed, 'GET', '/v1/fleet')).body?.nodes?.length === 2, 15_000, 100);
    assert.ok(two, JSON.stringify((await call(managed, 'GET', '/v1/fleet')).body));
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await sidecar?.stop();
    if (sidecar !== undefined) await rm(sidecar.root, { recursive: true, force: true });
    await etcd?.stop();
    await echo?.close();
  });

  it('a create through the managed node echoes through the operator\'s nginx too, right after the answer; the operator\'s master is reloaded, not replaced', async () => {
    const master = await sidecar.master();
    const created = await call(managed, 'POST', '/v1/streams', { port: 30470, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.fleet.complete, true);
    assert.equal(await whoAnswers(30470, { host: MANAGED }), 'both');
    assert.equal(await whoAnswers(30470, { host: EXTERNAL }), 'both');
    assert.equal(await sidecar.master(), master);
    const status = (await call(external, 'GET', '/v1/status')).body;
    assert.equal(status.mode, 'external');
  });

  it('the external node\'s Portico stopped: its nginx serves on; restarted, it applies what changed meanwhile', async () => {
    const master = await sidecar.master();
    await external.stopPortico();
    // A clean stop leaves the fleet at once: the change's answer does not wait for it.
    const created = await call(managed, 'POST', '/v1/streams', { port: 30471, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.body.fleet.nodes.map((n: { node: string }) => n.node), ['managed']);
    assert.equal(await whoAnswers(30470, { host: EXTERNAL }), 'both', 'the operator\'s nginx serves without Portico');
    await external.restart();
    const caughtUp = await eventually(async () => (await whoAnswers(30471, { host: EXTERNAL }).catch(() => '')) === 'both', 10_000, 100);
    assert.ok(caughtUp, 'the external node applied the change made while its Portico was away');
    assert.equal(await sidecar.master(), master, 'the operator\'s master was never replaced');
    assert.deepEqual([...(await external.streamFiles())], [...(await managed.streamFiles())], 'the same files, the node\'s address aside');
  });
});
