/**
 * FLEET_WAIT (issue 16): what a change's answer waits for. Three nodes on one etcd member, the third
 * slow on purpose (PORTICO_TEST_DELAY pauses each of its batches 1.5 s after the commit): a change
 * through a node with `local` answers once that node serves it, with `quorum` once two of three do,
 * with `none` once etcd took it; each answer says who is still pending, and the slow node catches up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleetNode, type FleetNode } from '../helpers/fleet.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { fixtureCert, startTaggedServer, whoAnswers, type TaggedServer } from '../helpers/backends.js';
import { eventually } from '../helpers/net.js';

const SLOW_MS = 1500;

interface Outcome {
  node: string;
  outcome: string;
}

describe('FLEET_WAIT: local, quorum and none', { skip: etcdUnavailable() }, () => {
  let etcd: EtcdCluster;
  let echo: TaggedServer;
  const nodes: FleetNode[] = [];
  let local: FleetNode;
  let quorum: FleetNode;
  let none: FleetNode;

  before(async () => {
    etcd = await startEtcdCluster({ members: 1 });
    echo = await startTaggedServer('wait');
    const base = { endpoints: etcd.endpoints, prefix: '/portico-wait/', portRange: '30460-30469', httpPort: 30482, httpsPort: 30483 };
    const specs: Array<{ name: string; address: string; env: Record<string, string> }> = [
      { name: 'w-local', address: '127.0.0.16', env: { FLEET_WAIT: 'local' } },
      { name: 'w-quorum', address: '127.0.0.17', env: { FLEET_WAIT: 'quorum' } },
      { name: 'w-none', address: '127.0.0.18', env: { FLEET_WAIT: 'none', PORTICO_TEST_DELAY: `commit:${SLOW_MS}` } },
    ];
    for (const spec of specs) nodes.push(await startFleetNode({ ...base, ...spec }));
    [local, quorum, none] = nodes as [FleetNode, FleetNode, FleetNode];
    const three = await eventually(async () => ((await (await fetch(`${local.url}/v1/fleet`)).json()) as { nodes: unknown[] }).nodes.length === 3, 15_000, 100);
    assert.ok(three, 'three nodes in the fleet');
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await etcd?.stop();
    await echo?.close();
  });

  const create = async (node: FleetNode, port: number): Promise<{ ms: number; fleet: { complete: boolean; wait: string; nodes: Outcome[] } }> => {
    const t0 = performance.now();
    const res = await fetch(`${node.url}/v1/streams`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ port, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }),
      signal: AbortSignal.timeout(20_000),
    });
    const ms = performance.now() - t0;
    const body = (await res.json()) as { fleet: { complete: boolean; wait: string; nodes: Outcome[] } };
    assert.equal(res.status, 201, JSON.stringify(body));
    return { ms, fleet: body.fleet };
  };
  const outcomeOf = (fleet: { nodes: Outcome[] }, name: string): string | undefined => fleet.nodes.find((n) => n.node === name)?.outcome;

  it('local: answers once this node serves it, the slow node still pending', async () => {
    const { ms, fleet } = await create(local, 30460);
    assert.equal(fleet.wait, 'local');
    assert.equal(fleet.complete, true);
    assert.equal(outcomeOf(fleet, 'w-local'), 'applied');
    assert.equal(outcomeOf(fleet, 'w-none'), 'pending', JSON.stringify(fleet));
    assert.ok(ms < SLOW_MS, `answered in ${ms.toFixed(0)} ms, before the slow node's ${SLOW_MS} ms pause`);
    assert.equal(await whoAnswers(30460, { host: local.address }), 'wait');
  });

  it('quorum: answers once two of three serve it, the slow node still pending', async () => {
    const { ms, fleet } = await create(quorum, 30461);
    assert.equal(fleet.wait, 'quorum');
    assert.equal(fleet.complete, true);
    assert.equal(outcomeOf(fleet, 'w-local'), 'applied', JSON.stringify(fleet));
    assert.equal(outcomeOf(fleet, 'w-quorum'), 'applied');
    assert.equal(outcomeOf(fleet, 'w-none'), 'pending');
    assert.ok(ms < SLOW_MS, `answered in ${ms.toFixed(0)} ms`);
    for (const node of [local, quorum]) assert.equal(await whoAnswers(30461, { host: node.address }), 'wait');
  });

  it('none: answers once etcd took it, before its own node applied it; every node serves it soon after', async () => {
    // The slow node first catches up with the two changes before: its own dry run of this one would
    // otherwise queue behind their paused batches (one writer per node), which is not what is measured.
    // Its revision reaches the others' once its last batch is over (the pause included).
    const caughtUp = await eventually(
      async () => {
        const { nodes: all } = (await (await fetch(`${none.url}/v1/fleet`)).json()) as { nodes: Array<{ name: string; revision: number }> };
        return (all.find((n) => n.name === 'w-none')?.revision ?? 0) >= Math.max(...all.map((n) => n.revision));
      },
      10_000,
      100,
    );
    assert.ok(caughtUp, 'the slow node caught up');
    const { ms, fleet } = await create(none, 30462);
    assert.equal(fleet.wait, 'none');
    assert.equal(fleet.complete, true);
    assert.equal(outcomeOf(fleet, 'w-none'), 'pending', JSON.stringify(fleet));
    assert.ok(ms < SLOW_MS, `answered in ${ms.toFixed(0)} ms`);
    for (const node of nodes) {
      const served = await eventually(async () => (await whoAnswers(30462, { host: node.address }).catch(() => '')) === 'wait', 10_000, 100);
      assert.ok(served, `${node.name} serves it`);
    }
    // A certificate's answer is the certificate as written, though its node has not applied it yet.
    const cert = fixtureCert('a');
    const uploaded = await fetch(`${none.url}/v1/certificates`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'waitless', certificate: cert.cert, key: cert.key }), signal: AbortSignal.timeout(20_000) });
    const view = (await uploaded.json()) as { id: string; subject?: string; fleet: { nodes: Outcome[] } };
    assert.equal(uploaded.status, 201, JSON.stringify(view));
    assert.equal(view.id, 'waitless');
    assert.equal(outcomeOf(view.fleet, 'w-none'), 'pending');
    const stored = await eventually(async () => (await fetch(`${none.url}/v1/certificates/waitless`)).status === 200, 10_000, 100);
    assert.ok(stored, 'the slow node stores it soon after');
    // The slow node caught up with all three changes.
    for (const port of [30460, 30461]) assert.equal(await whoAnswers(port, { host: none.address }), 'wait');
  });
});
