'use strict';
// The ENQCMD path from Node.js against a running svasim (address in SVASIM_ADDR).

const test = require('node:test');
const assert = require('node:assert');
const { connect, memmoveDescriptor, parseCompletion, STATUS, grpc } = require('../svasim.js');

const ADDR = process.env.SVASIM_ADDR;

test('ENQCMD MEMMOVE from Node.js: #GP fixup, completion record, bytes moved', { skip: !ADDR }, async () => {
  const c = connect(ADDR);
  try {
    const { process: proc } = await c.cpu.CreateProcess({ name: 'node-app' });
    const tid = proc.tids[0];
    const buf = BigInt((await c.cpu.Mmap({ pid: proc.pid, length: 3 * 4096, writable: true, populate: true })).address);
    const data = Buffer.from('hello from node '.repeat(8));
    await c.cpu.WriteMemory({ pid: proc.pid, address: buf.toString(), data });
    const wq = await c.cpu.OpenWorkQueue({ pid: proc.pid, device: 'dsa0', wq_id: 0 });
    assert.ok(wq.pasid >= 1 && wq.shared);
    await c.cpu.Schedule({ tid, cpu: 0 });
    const comp = buf + 8192n;
    const desc = memmoveDescriptor(buf, buf + 4096n, data.length, comp);
    const r = await c.cpu.Enqcmd({ tid, portal_address: wq.portal_address, raw: desc });
    assert.strictEqual(r.outcome, 'ENQCMD_OUTCOME_ACCEPTED');
    assert.strictEqual(r.gp_faults, 1);
    assert.strictEqual(r.pasid_sent, wq.pasid);
    const w = await c.cpu.WaitCompletion({ tid, completion_addr: comp.toString() });
    assert.strictEqual(parseCompletion(w.raw).status, STATUS.SUCCESS);
    const back = await c.cpu.ReadMemory({ pid: proc.pid, address: (buf + 4096n).toString(), length: data.length });
    assert.deepStrictEqual(back.data, data);
  } finally {
    c.close();
  }
});

test('a bad request is a gRPC error with a reason in google.rpc.Status details', { skip: !ADDR }, async () => {
  const c = connect(ADDR);
  try {
    await assert.rejects(c.cpu.Mmap({ pid: 999999, length: 4096 }), (err) => {
      assert.strictEqual(err.code, grpc.status.NOT_FOUND);
      assert.match(err.details, /no process with pid 999999/);
      // google.rpc.Status with its ErrorInfo travels in the binary trailer.
      const [status] = err.metadata.get('grpc-status-details-bin');
      assert.ok(Buffer.from(status).includes('UNKNOWN_PROCESS'));
      assert.ok(Buffer.from(status).includes('type.googleapis.com/google.rpc.ErrorInfo'));
      return true;
    });
  } finally {
    c.close();
  }
});
