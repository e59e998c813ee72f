/**
 * Worker thread of src/volume/recrypt.ts: receives the old and the new master key, then works
 * on ranges of shared buffers in place on request (SPEC §15.6 steps 1 and 4).
 *
 * Messages in: `{ keys }` (a SharedArrayBuffer: old key ‖ new key, zeroed here once the
 * ciphers hold them), `{ id, op, data, firstSector?, record? }`, `{ close }`.
 * - `op: 'fingerprint'`: write the checksum record of `data` into `record` (SPEC §15.5).
 * - `op: 'recrypt'`: with `record`, first check `data` against it and answer the first
 *   512-byte block that differs without touching `data`; then decrypt under the old key and
 *   encrypt under the new one, in place.
 *
 * Messages out: `{ loaded }`, `{ keyed }`, `{ id, mismatch }` (-1: none) or `{ id, error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { XtsCipher } from '../../crypto/xts.js';
import { MASTER_KEY_BYTES } from '../../volume-format/constants.js';
import { findChecksumMismatch, writeChecksumRecord } from '../../volume-format/checksum-record.js';
import type { JobOp, SharedView } from './recrypt.js';

interface Message {
  keys?: SharedArrayBuffer;
  close?: true;
  id?: number;
  op?: JobOp;
  data?: SharedView;
  firstSector?: number;
  record?: SharedView;
}

const port = parentPort!;
const { sectorSize } = workerData as { sectorSize: number };
let oldXts: XtsCipher | null = null;
let newXts: XtsCipher | null = null;

const viewOf = (v: SharedView) => new Uint8Array(v.buffer, v.byteOffset, v.length);

port.on('message', (msg: Message) => {
  if (msg.keys) {
    const keys = new Uint8Array(msg.keys);
    try {
      oldXts = new XtsCipher(keys.subarray(0, MASTER_KEY_BYTES), sectorSize);
      newXts = new XtsCipher(keys.subarray(MASTER_KEY_BYTES), sectorSize);
    } finally {
      keys.fill(0); // the ciphers hold their own copies; wiped for both threads
    }
    port.postMessage({ keyed: true });
    return;
  }
  if (msg.close) {
    oldXts?.dispose();
    newXts?.dispose();
    port.close();
    return;
  }
  try {
    const data = viewOf(msg.data!);
    const record = msg.record ? viewOf(msg.record) : undefined;
    let mismatch = -1;
    if (msg.op === 'fingerprint') writeChecksumRecord(data, record!);
    else {
      if (!oldXts || !newXts) throw new Error('no keys yet');
      if (record) mismatch = findChecksumMismatch(data, record);
      if (mismatch < 0) oldXts.recryptSectors(newXts, data, msg.firstSector!); // in memory only
    }
    port.postMessage({ id: msg.id, mismatch });
  } catch (err) {
    port.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
port.postMessage({ loaded: true });
