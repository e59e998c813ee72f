/**
 * Worker thread of src/volume/recrypt.ts: receives the old and the new master key, then
 * re-encrypts ranges of shared buffers in place on request (SPEC §15.6 step 1).
 *
 * Messages in: `{ keys }` (a SharedArrayBuffer: old key ‖ new key, zeroed here once the
 * ciphers hold them), `{ id, buffer, byteOffset, length, firstSector, fingerprints? }`,
 * `{ close }`.
 * Messages out: `{ loaded }`, `{ keyed }`, `{ id }` or `{ id, error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { XtsCipher } from '../../crypto/xts.js';
import { MASTER_KEY_BYTES } from '../../volume-format/constants.js';
import { writeChecksumRecord } from '../../volume-format/checksum-record.js';

interface Message {
  keys?: SharedArrayBuffer;
  close?: true;
  id?: number;
  buffer?: SharedArrayBuffer;
  byteOffset?: number;
  length?: number;
  firstSector?: number;
  /** Where to write the chunk's checksum record first (SPEC §15.5), if anywhere. */
  fingerprints?: { buffer: SharedArrayBuffer; byteOffset: number; length: number };
}

const port = parentPort!;
const { sectorSize } = workerData as { sectorSize: number };
let oldXts: XtsCipher | null = null;
let newXts: XtsCipher | null = null;

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
    if (!oldXts || !newXts) throw new Error('no keys yet');
    const view = new Uint8Array(msg.buffer!, msg.byteOffset!, msg.length!);
    const fp = msg.fingerprints;
    if (fp) writeChecksumRecord(view, new Uint8Array(fp.buffer, fp.byteOffset, fp.length));
    oldXts.recryptSectors(newXts, view, msg.firstSector!); // plaintext lives only in memory
    port.postMessage({ id: msg.id });
  } catch (err) {
    port.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
port.postMessage({ loaded: true });
