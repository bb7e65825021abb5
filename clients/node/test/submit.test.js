'use strict';
// CpuService.Submit from Node.js: pipelined ENQCMDs, results in order with their tags,
// a refused submission with its own error while the stream goes on.

const test = require('node:test');
const assert = require('node:assert');
const { connect, memmoveDescriptor, parseCompletion, STATUS } = require('../svasim.js');

const ADDR = process.env.SVASIM_ADDR;

test('pipelined MEMMOVEs over a Submit stream, with a refused one among them', { skip: !ADDR }, async () => {
  const c = connect(ADDR);
  try {
    const { process: proc } = await c.cpu.CreateProcess({ name: 'node-stream' });
    const tid = proc.tids[0];
    const n = 20;
    const size = 256;
    // Source, destinations (size * n bytes: two pages), completion records.
    const buf = BigInt((await c.cpu.Mmap({ pid: proc.pid, length: 4 * 4096, writable: true, populate: true })).address);
    const [dst, comp] = [buf + 4096n, buf + 3n * 4096n];
    const data = Buffer.alloc(size, 0x5a);
    await c.cpu.WriteMemory({ pid: proc.pid, address: buf.toString(), data });
    const wq = await c.cpu.OpenWorkQueue({ pid: proc.pid, device: 'dsa0', wq_id: 0 });
    await c.cpu.Schedule({ tid, cpu: 0 });
    const subs = [];
    for (let i = 0; i < n; i++) {
      const desc = memmoveDescriptor(buf, dst + BigInt(size * i), size, comp + BigInt(32 * i));
      subs.push({ tag: i, enqcmd: { tid, portal_address: wq.portal_address, raw: desc }, wait_completion: i === n - 1 });
    }
    subs.splice(5, 0, { tag: 99, enqcmd: { tid, portal_address: wq.portal_address, raw: Buffer.alloc(10) } });
    const results = [];
    for await (const r of c.submitStream(subs, { window: 8, perMessage: 3 })) results.push(r);
    assert.deepStrictEqual(
      results.map((r) => r.tag),
      subs.map((s) => String(s.tag)),
    );
    const bad = results[5];
    assert.strictEqual(bad.error.reason, 'BAD_DESCRIPTOR_SIZE');
    assert.strictEqual(bad.error.code, 3); // INVALID_ARGUMENT
    const good = results.filter((r) => r.tag !== '99');
    assert.ok(good.every((r) => r.enqcmd.outcome === 'ENQCMD_OUTCOME_ACCEPTED' && !r.error));
    assert.strictEqual(parseCompletion(good[n - 1].completion.raw).status, STATUS.SUCCESS);
    const back = await c.cpu.ReadMemory({ pid: proc.pid, address: dst.toString(), length: size * n });
    assert.deepStrictEqual(back.data, Buffer.alloc(size * n, 0x5a));
  } finally {
    c.close();
  }
});
