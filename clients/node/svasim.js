'use strict';
// Node.js client of svasim: the protos in ../../proto, loaded at run time, and a few
// helpers to build the 64-byte DSA descriptors and read the 32-byte completion records
// (the layouts of include/uapi/linux/idxd.h).

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const FILES = ['cpu', 'iommu', 'accel', 'trace'].map((s) => `svasim/${s}/v1/${s}.proto`);

const OPCODE = { NOOP: 0x00, BATCH: 0x01, DRAIN: 0x02, MEMMOVE: 0x03, MEMFILL: 0x04, COMPARE: 0x05 };
const FLAG = { FENCE: 0x1, BOF: 0x2, CRAV: 0x4, RCR: 0x8, RCI: 0x10 };
const STATUS = { NONE: 0x00, SUCCESS: 0x01, PAGE_FAULT_NOBOF: 0x03 };

function loadPackage() {
  const def = protoLoader.loadSync(FILES, {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names as in the protos (snake_case)
    longs: String, // 64-bit addresses do not fit a JS number: keep them as strings
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).svasim;
}

// Promise-returning wrappers for every method of a stub.
function promisify(stub) {
  const out = {};
  for (const name of Object.keys(Object.getPrototypeOf(stub))) {
    if (typeof stub[name] !== 'function' || name.startsWith('$') || name === 'constructor') continue;
    out[name] = (request) =>
      new Promise((resolve, reject) => {
        stub[name](request, (err, reply) => (err ? reject(err) : resolve(reply)));
      });
  }
  return out;
}

// A connection to a svasim process: { cpu, iommu, accel, trace, close() }.
function connect(address, credentials = grpc.credentials.createInsecure()) {
  const pkg = loadPackage();
  const stubs = {
    cpu: new pkg.cpu.v1.CpuService(address, credentials),
    // A program sees the IOMMU as root does in debugfs: read-only.
    iommu: new pkg.iommu.v1.IommuDebugService(address, credentials),
    accel: new pkg.accel.v1.AccelService(address, credentials),
    trace: new pkg.trace.v1.TraceService(address, credentials),
  };
  const client = {};
  for (const [name, stub] of Object.entries(stubs)) client[name] = promisify(stub);
  client.submitStream = (submissions, options) => submitStream(stubs.cpu, submissions, options);
  client.close = () => Object.values(stubs).forEach((s) => s.close());
  return client;
}

// Pipelines submissions ({ tag, enqcmd | movdir64b | enqcmds, wait_completion }) over one
// CpuService.Submit stream: an async generator of their results, in order. At most
// `window` submissions are unanswered at a time; they travel `perMessage` to a request
// message. A refused submission is a result with `error` set ({ code, reason, metadata,
// ... }); a failure of the stream itself is thrown. Leaving the loop early cancels it.
async function* submitStream(cpuStub, submissions, { window = 512, perMessage = 64 } = {}) {
  if (window < 1 || perMessage < 1) throw new RangeError('window and perMessage must be at least 1');
  const call = cpuStub.Submit();
  const source = submissions[Symbol.iterator]();
  const results = [];
  let credits = window;
  let sent = false; // every submission is written and the stream half-closed
  let ended = false;
  let error = null;
  let wake = null;
  const notify = () => {
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  call.on('data', (msg) => {
    results.push(...msg.results);
    notify();
  });
  call.on('error', (e) => {
    error = e;
    notify();
  });
  call.on('end', () => {
    ended = true;
    notify();
  });
  const send = () => {
    while (!sent && credits > 0) {
      const batch = [];
      while (batch.length < Math.min(perMessage, credits)) {
        const next = source.next();
        if (next.done) {
          sent = true;
          break;
        }
        batch.push(next.value);
      }
      credits -= batch.length;
      if (batch.length) call.write({ submissions: batch });
      if (sent) call.end();
    }
  };
  try {
    send();
    for (;;) {
      while (results.length) {
        credits += 1;
        yield results.shift();
      }
      if (error) throw error;
      if (ended) return;
      send();
      // Events fire only while this generator waits, so none is missed between the
      // checks above and setting `wake`.
      await new Promise((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    if (!ended && !error) call.cancel();
  }
}

// struct dsa_hw_desc for a MEMMOVE (PASID field zero: ENQCMD fills it in).
function memmoveDescriptor(src, dst, size, completion, flags = FLAG.CRAV | FLAG.RCR) {
  const d = Buffer.alloc(64);
  d.writeUInt32LE((flags & 0xffffff) | (OPCODE.MEMMOVE << 24), 4);
  d.writeBigUInt64LE(BigInt(completion), 8);
  d.writeBigUInt64LE(BigInt(src), 16);
  d.writeBigUInt64LE(BigInt(dst), 24);
  d.writeUInt32LE(size, 32);
  return d;
}

// struct dsa_completion_record, decoded.
function parseCompletion(buf) {
  if (buf.length !== 32) throw new Error(`a completion record is 32 bytes, got ${buf.length}`);
  return {
    status: buf[0] & 0x7f,
    statusWrite: Boolean(buf[0] & 0x80),
    result: buf[1],
    bytesCompleted: buf.readUInt32LE(4),
    faultAddr: buf.readBigUInt64LE(8),
  };
}

module.exports = { connect, submitStream, memmoveDescriptor, parseCompletion, OPCODE, FLAG, STATUS, grpc };
