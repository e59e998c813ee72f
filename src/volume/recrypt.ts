/**
 * The arithmetic of re-encryption (SPEC §15.6 steps 1 and 4): checksum records of old
 * ciphertext, and sectors decrypted under the old master key and encrypted under the new one in
 * place, either on this thread or on worker threads.
 *
 * Why workers: decrypt + encrypt (≈ 2.7 GB/s on one core here with the native XTS engine) on
 * the main thread would delay the reads, writes and flushes it orchestrates: all on the main
 * thread measured 637–711 MB/s against 698–767 with one worker (1 GiB, alternating runs). One
 * worker is the default (src/volume/reencrypt.ts says why not two).
 * Buffers are SharedArrayBuffer-backed, so a job is a message naming a range, with no copy.
 * Workers are spawned before the keys exist (while Argon2 runs) because starting one costs tens
 * of milliseconds of module loading.
 */
import { Worker } from 'node:worker_threads';
import { wipe } from '../../crypto/bytes.js';
import { XtsCipher } from '../../crypto/xts.js';
import { findChecksumMismatch, writeChecksumRecord } from '../../volume-format/checksum-record.js';
import { MASTER_KEY_BYTES } from '../../volume-format/constants.js';

/** Re-encrypts whole sectors in place; `close()` wipes the keys it holds. */
export interface Recrypter {
  /** Threads doing the work (0 = this thread). */
  readonly threads: number;
  /** A buffer of `bytes` that {@link Recrypter.recrypt} accepts views of. */
  allocate(bytes: number): Uint8Array;
  /**
   * Write the checksum record (SPEC §15.5) of the old ciphertext `view` into `out` (a view of a
   * buffer from {@link Recrypter.allocate}, `view.length / 32` bytes). Off the main thread
   * because there it took ≈ 0.2 s per GiB of the thread that orchestrates the I/O.
   */
  fingerprint(view: Uint8Array, out: Uint8Array): Promise<void>;
  /**
   * Decrypt `view` (sector `firstSector` onward) under the old key, re-encrypt under the new.
   * With `expected` (a checksum record from {@link Recrypter.fingerprint}), first check the old
   * ciphertext against it (SPEC §15.6 step 4, a segment read twice): resolves to the index of
   * the first 512-byte block that differs, leaving `view` untouched, or -1 once re-encrypted.
   */
  recrypt(view: Uint8Array, firstSector: number, expected?: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

/** A recrypter on the calling thread (small volumes, where starting workers costs more). */
export function inlineRecrypter(
  oldKey: Uint8Array,
  newKey: Uint8Array,
  sectorSize: number,
): Recrypter {
  const oldXts = new XtsCipher(oldKey, sectorSize);
  const newXts = new XtsCipher(newKey, sectorSize);
  return {
    threads: 0,
    allocate: (bytes) => new Uint8Array(bytes),
    async fingerprint(view, out) {
      writeChecksumRecord(view, out);
    },
    async recrypt(view, firstSector, expected) {
      const mismatch = expected ? findChecksumMismatch(view, expected) : -1;
      if (mismatch >= 0) return mismatch;
      oldXts.recryptSectors(newXts, view, firstSector); // plaintext exists only in this buffer
      return -1;
    },
    async close() {
      oldXts.dispose();
      newXts.dispose();
    },
  };
}

interface Pending<T = void> {
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

/** What a worker does with a job (src/volume/recrypt-worker.ts). */
export type JobOp = 'fingerprint' | 'recrypt';

/** A view of a SharedArrayBuffer, as sent to a worker. */
export interface SharedView {
  buffer: SharedArrayBuffer;
  byteOffset: number;
  length: number;
}

/** One worker thread and the jobs it owes an answer for. */
class RecryptWorker {
  readonly worker: Worker;
  readonly jobs = new Map<number, Pending<number>>();
  private keyed: Pending | null = null;
  private exitWaiter: (() => void) | null = null;
  private exited = false;
  private loaded: Promise<void>;
  private failure: Error | null = null;
  closing = false;

  constructor(sectorSize: number) {
    this.worker = new Worker(new URL('./recrypt-worker.js', import.meta.url), {
      workerData: { sectorSize },
    });
    let onLoaded: Pending | null = null;
    this.loaded = new Promise<void>((resolve, reject) => (onLoaded = { resolve, reject }));
    this.loaded.catch(() => undefined); // observed in start()
    // One set of listeners for the worker's life (removeAllListeners() would also remove
    // Node's own listeners that start the message port).
    this.worker.on(
      'message',
      (msg: { loaded?: true; keyed?: true; id?: number; mismatch?: number; error?: string }) => {
        if (msg.loaded) return onLoaded!.resolve();
        if (msg.keyed) return this.keyed?.resolve();
        const job = this.jobs.get(msg.id!);
        if (!job) return;
        this.jobs.delete(msg.id!);
        if (msg.error !== undefined) job.reject(new Error(`recrypt worker: ${msg.error}`));
        else job.resolve(msg.mismatch ?? -1);
      },
    );
    const fail = (err: Error) => {
      this.failure ??= err;
      onLoaded!.reject(err);
      this.keyed?.reject(err);
      for (const job of this.jobs.values()) job.reject(err);
      this.jobs.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (!this.closing || code !== 0) fail(new Error(`recrypt worker exited with ${code}`));
      this.exitWaiter?.();
    });
  }

  /** Hand the keys over (SPEC §15.6): in a SharedArrayBuffer the worker zeroes once its
   * ciphers hold them, so the message channel leaves no serialized copy behind. */
  async start(oldKey: Uint8Array, newKey: Uint8Array): Promise<void> {
    // Copied now, synchronously: the caller may wipe its keys before the worker has loaded.
    const keys = new SharedArrayBuffer(2 * MASTER_KEY_BYTES);
    const view = new Uint8Array(keys);
    view.set(oldKey, 0);
    view.set(newKey, MASTER_KEY_BYTES);
    try {
      await this.loaded;
      await new Promise<void>((resolve, reject) => {
        this.keyed = { resolve, reject };
        this.worker.postMessage({ keys });
      });
    } finally {
      wipe(view); // already zero unless the worker failed first
    }
  }

  get error(): Error | null {
    return this.failure;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => (this.exitWaiter = resolve));
    this.worker.postMessage({ close: true }); // disposes the ciphers, then the thread ends
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await gone;
    clearTimeout(timer);
  }
}

/** Worker threads spawned ahead of time; {@link RecryptWorkers.start} gives them the keys. */
export class RecryptWorkers {
  private readonly workers: RecryptWorker[];
  private nextId = 0;

  /** Spawn `threads` workers for `sectorSize`-byte sectors (they load while the caller works). */
  constructor(
    private readonly sectorSize: number,
    threads: number,
  ) {
    this.workers = Array.from({ length: threads }, () => new RecryptWorker(sectorSize));
  }

  /**
   * Give every worker both keys (copied before this returns) and return a {@link Recrypter}
   * at once. Until the workers are ready (start-up measured 70–400 ms on the shared project
   * machine, longer than the whole first segment takes) jobs run on the calling thread, so the
   * disk is not left idle meanwhile.
   */
  start(oldKey: Uint8Array, newKey: Uint8Array): Recrypter {
    let workersReady = false;
    const ready = Promise.all(this.workers.map((w) => w.start(oldKey, newKey))).then(() => {
      workersReady = true;
    });
    ready.catch(() => undefined); // reported by the first job after start-up
    const inline = inlineRecrypter(oldKey, newKey, this.sectorSize);
    // A job runs here until the workers are ready (unless one failed: then it reports that).
    const inlineNow = () => !workersReady && this.workers.every((w) => w.error === null);
    return {
      threads: this.workers.length,
      allocate: (bytes) => new Uint8Array(new SharedArrayBuffer(bytes)),
      fingerprint: async (view, out) => {
        if (inlineNow()) return inline.fingerprint(view, out);
        await ready;
        await this.post({ op: 'fingerprint', data: view, record: out });
      },
      recrypt: async (view, firstSector, expected) => {
        if (inlineNow()) return inline.recrypt(view, firstSector, expected);
        await ready;
        return this.post({ op: 'recrypt', data: view, firstSector, record: expected });
      },
      close: async () => {
        await inline.close();
        await ready.catch(() => undefined);
        await this.close();
      },
    };
  }

  /** Send a job to the least busy worker; resolves to its `mismatch` (-1 when none). */
  private post(job: {
    op: JobOp;
    data: Uint8Array;
    firstSector?: number;
    record?: Uint8Array;
  }): Promise<number> {
    const { data, record } = job;
    if (
      !(data.buffer instanceof SharedArrayBuffer) ||
      (record !== undefined && !(record.buffer instanceof SharedArrayBuffer))
    ) {
      return Promise.reject(new TypeError('recrypt: buffers must come from allocate()'));
    }
    const target = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    if (target.error) return Promise.reject(target.error);
    const id = this.nextId++;
    const share = (v: Uint8Array): SharedView => ({
      buffer: v.buffer as SharedArrayBuffer,
      byteOffset: v.byteOffset,
      length: v.length,
    });
    return new Promise<number>((resolve, reject) => {
      target.jobs.set(id, { resolve, reject });
      target.worker.postMessage({
        id,
        op: job.op,
        data: share(data),
        firstSector: job.firstSector,
        record: record === undefined ? undefined : share(record),
      });
    });
  }

  /** End every worker (they wipe their keys first). Idempotent. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
