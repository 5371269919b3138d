import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { format, inspect } from 'node:util';
import { MemoryLogger } from '../../src/log.js';
import {
  NodeSecretStore,
  clearNodeSecret,
  defaultNodeSecretStore,
  readNodeSecret,
  writeNodeSecret,
} from '../../src/persist.js';

const SECRET = 'node-secret-Zq8v1XkP0w-do-not-leak';

describe('NodeSecretStore', () => {
  it('starts empty, stores, replaces and clears the secret and the identity', () => {
    const store = new NodeSecretStore();
    assert.equal(store.read(), undefined);
    assert.equal(store.identity(), undefined);

    const before = Date.now();
    store.write(SECRET, { nodeId: 'node-1', organizationId: 'org-1' });
    assert.equal(store.read(), SECRET);
    const id = store.identity();
    assert.ok(id);
    assert.equal(id.nodeId, 'node-1');
    assert.equal(id.organizationId, 'org-1');
    assert.ok(id.receivedAt >= before && id.receivedAt <= Date.now());

    store.write('second-secret', { nodeId: 'node-2' });
    assert.equal(store.read(), 'second-secret');
    assert.deepEqual({ ...store.identity(), receivedAt: 0 }, { nodeId: 'node-2', organizationId: null, receivedAt: 0 });

    store.write('third-secret');
    assert.equal(store.read(), 'third-secret');
    assert.equal(store.identity(), undefined, 'a write without identity forgets the previous one');

    store.clear();
    assert.equal(store.read(), undefined);
    assert.equal(store.identity(), undefined);
  });

  it('hands out copies of the identity', () => {
    const store = new NodeSecretStore();
    store.write(SECRET, { nodeId: 'node-1', organizationId: null });
    const id = store.identity();
    assert.ok(id);
    id.nodeId = 'tampered';
    assert.equal(store.identity()?.nodeId, 'node-1');
  });

  it('rejects an empty or non-string secret without echoing it', () => {
    const store = new NodeSecretStore();
    assert.throws(() => store.write(''), TypeError);
    assert.throws(() => store.write(42 as unknown as string), TypeError);
    assert.throws(
      () => store.write(SECRET, { nodeId: 7 as unknown as string }),
      (err: unknown) => err instanceof TypeError && !err.message.includes(SECRET),
    );
    assert.equal(store.read(), undefined);
  });

  it('logs persist.secret.stored with id, organisation and length, never the secret', () => {
    const logger = new MemoryLogger();
    const store = new NodeSecretStore({ logger });
    store.write(SECRET, { nodeId: 'node-1', organizationId: 'org-1' });
    const lines = logger.events('persist.secret.stored');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.level, 'info');
    assert.equal(lines[0]?.node_id, 'node-1');
    assert.equal(lines[0]?.organization_id, 'org-1');
    assert.equal(lines[0]?.secret_len, Buffer.byteLength(SECRET, 'utf8'));
    assert.ok(!logger.dump().includes(SECRET));
  });

  it('never shows the secret through JSON, inspect, String or template strings', () => {
    const store = new NodeSecretStore();
    store.write(SECRET, { nodeId: 'node-1', organizationId: 'org-1' });
    const shown = [
      JSON.stringify(store),
      JSON.stringify({ nested: { store } }),
      inspect(store),
      inspect(store, { showHidden: true, depth: Infinity }),
      inspect({ nested: store }, { showHidden: true, depth: Infinity }),
      format('%o %O %s %j', store, store, store, store),
      String(store),
      `${store}`,
      Object.keys(store).join(','),
      JSON.stringify(Object.getOwnPropertyNames(store).map((k) => (store as unknown as Record<string, unknown>)[k])),
    ];
    for (const text of shown) assert.ok(!text.includes(SECRET), `leaked through: ${text.slice(0, 80)}`);
    const json = JSON.parse(JSON.stringify(store)) as { hasSecret: boolean; identity: { nodeId: string } };
    assert.equal(json.hasSecret, true);
    assert.equal(json.identity.nodeId, 'node-1');
    assert.match(inspect(store), /hasSecret: true/);
  });
});

describe('crate-shaped functions on the default store', () => {
  after(() => defaultNodeSecretStore.clear());

  it('write, read and clear the default store', () => {
    clearNodeSecret();
    assert.equal(readNodeSecret(), undefined);
    writeNodeSecret(SECRET);
    assert.equal(readNodeSecret(), SECRET);
    assert.equal(defaultNodeSecretStore.read(), SECRET);
    clearNodeSecret();
    assert.equal(readNodeSecret(), undefined);
  });
});
