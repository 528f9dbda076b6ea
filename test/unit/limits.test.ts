/**
 * File-descriptor limits: a range the machine cannot carry is refused at start-up, naming the limit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { descriptorShortfall, listenersFor } from '../../src/nginx/limits.js';
import { sizeWorkers } from '../../src/render/main.js';

describe('descriptor limits', () => {
  it('count two sockets per port and the apps\' three', () => {
    assert.equal(listenersFor(10), 23);
    assert.equal(listenersFor(5000), 10_003);
  });

  it('refuse a range whose listeners the master cannot open, saying which limit to raise', () => {
    const reason = descriptorShortfall(5000, 8192, true);
    assert.match(reason ?? '', /PORT_RANGE of 5000 ports needs 10067 open files in nginx's master \(10003 listening sockets\), but the hard limit is 8192/);
    assert.match(reason ?? '', /ulimit -Hn; LimitNOFILE=/);
    assert.equal(descriptorShortfall(5000, 10_067, true), undefined);
  });

  it('refuse, when not root, a range whose workers would need more than the hard limit', () => {
    const { workerRlimitNofile } = sizeWorkers(listenersFor(1000));
    assert.match(descriptorShortfall(1000, workerRlimitNofile - 1, false) ?? '', /in each nginx worker.*only root may go beyond it/);
    assert.equal(descriptorShortfall(1000, workerRlimitNofile - 1, true), undefined, 'root: nginx raises the workers\' limit itself');
    assert.equal(descriptorShortfall(1000, workerRlimitNofile, false), undefined);
  });
});
