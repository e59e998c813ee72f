/**
 * The directory half of the power-loss model, for operations that publish a new file under a
 * name (create, header backup: SPEC §9.1, §13.2). While installed, it wraps node:fs promises'
 * `link`, `rename`, `rm`, `unlink` and `open` for the watched names of one directory: each
 * name change is logged as pending until an fsync of the directory, and a file created with
 * `open(path, 'wx')` has its `writeFile` content pending until that handle's `sync`. At a crash
 * point (the N-th logged event) the change is made, then every later watched call throws
 * {@link SimulatedCrash}. {@link persistedNames} and {@link persistedBytes} then give one
 * persisted state: the durable names plus any subset of the pending changes (applied in
 * order), and for an unsynced file its 512-byte blocks landed or not.
 *
 * What it cannot model: name changes made through other calls (none of ours), and ordering
 * between directories (we publish within one). The data of a container is modelled by
 * PowerLossStorage; this only says which inode a name reaches.
 */
import { promises as fsp, lstatSync, readdirSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { SimulatedCrash } from './fault-storage.js';
import { BLOCK_BYTES, type PersistPlan } from './power-loss-storage.js';

type NameOp =
  | { kind: 'link' | 'rename'; from: string; to: string; ino: number }
  | { kind: 'unlink'; name: string };

/** Name changes and new-file writes in one directory, pending until fsynced. */
export class DirectoryModel {
  events = 0;
  crashed = false;
  /** Name changes since the last directory fsync. */
  pending: NameOp[] = [];
  private durable = new Map<string, number>();
  private files = new Map<number, { bytes: Uint8Array; synced: boolean }>();
  private undo: (() => void)[] = [];

  constructor(
    private readonly dir: string,
    private readonly watched: (name: string) => boolean,
    private readonly crashAt: number = Infinity,
  ) {
    this.dir = resolve(dir);
  }

  private mine(path: string): string | null {
    const p = resolve(String(path));
    return dirname(p) === this.dir && this.watched(basename(p)) ? basename(p) : null;
  }

  /** Start an event; the returned function ends it (and crashes at the crash point). */
  private begin(): () => void {
    if (this.crashed) throw new SimulatedCrash();
    const index = this.events++;
    return () => {
      if (index === this.crashAt) {
        this.crashed = true;
        throw new SimulatedCrash();
      }
    };
  }

  /** The inode at `name` now, as the durable starting point. */
  private inode(name: string): number {
    return lstatSync(`${this.dir}/${name}`).ino;
  }

  /** Wrap the fs calls ({@link uninstall} undoes it). */
  install(): void {
    const f = fsp as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const patch = (
      name: string,
      wrap: (orig: (...a: unknown[]) => Promise<unknown>) => (...a: unknown[]) => Promise<unknown>,
    ) => {
      const orig = f[name]!;
      f[name] = wrap(orig);
      this.undo.push(() => (f[name] = orig));
    };
    const nameChange =
      (kind: 'link' | 'rename') =>
      (orig: (...a: unknown[]) => Promise<unknown>) =>
      async (...a: unknown[]) => {
        const from = this.mine(a[0] as string);
        const to = this.mine(a[1] as string);
        if (from === null || to === null) return orig(...a);
        const end = this.begin();
        const ino = this.inode(from);
        const r = await orig(...a);
        this.pending.push({ kind, from, to, ino });
        end();
        return r;
      };
    const removal =
      (orig: (...a: unknown[]) => Promise<unknown>) =>
      async (...a: unknown[]) => {
        const name = this.mine(a[0] as string);
        if (name === null) return orig(...a);
        const end = this.begin();
        const r = await orig(...a);
        this.pending.push({ kind: 'unlink', name });
        end();
        return r;
      };
    patch('link', nameChange('link'));
    patch('rename', nameChange('rename'));
    patch('rm', removal);
    patch('unlink', removal);
    patch('open', (orig) => async (...a: unknown[]) => {
      const path = resolve(String(a[0]));
      const handle = (await orig(...a)) as fsp.FileHandle;
      if (path === this.dir) {
        handle.sync = async () => {
          if (this.crashed) throw new SimulatedCrash();
          for (const op of this.pending) applyOp(this.durable, op);
          this.pending = [];
        };
      } else if (this.mine(path) !== null && a[1] === 'wx') {
        const ino = (await handle.stat()).ino;
        const file = { bytes: new Uint8Array(0), synced: true };
        this.files.set(ino, file);
        const writeFile = handle.writeFile.bind(handle);
        handle.writeFile = async (data: unknown) => {
          const end = this.begin();
          file.bytes = Uint8Array.from(data as Uint8Array);
          file.synced = false;
          await writeFile(data as Uint8Array);
          end();
        };
        handle.sync = async () => {
          if (this.crashed) throw new SimulatedCrash();
          file.synced = true;
        };
      }
      return handle;
    });
    // Names present before the operation are durable.
    for (const name of readdirSync(this.dir).filter((n) => this.watched(n))) {
      this.durable.set(name, this.inode(name));
    }
  }

  uninstall(): void {
    for (const u of this.undo.reverse()) u();
    this.undo = [];
  }

  /** Name → inode after the power cut, with the pending changes `plan` keeps. */
  persistedNames(plan: PersistPlan): Map<string, number> {
    const names = new Map(this.durable);
    this.pending.forEach((op, i) => {
      if (plan.write(i, 1)[0]) applyOp(names, op);
    });
    return names;
  }

  /**
   * The content of a file written through a `wx` handle after the power cut (`null` for an
   * inode this model did not see written): synced bytes, or its blocks as `plan` lands them.
   */
  persistedBytes(ino: number, plan: PersistPlan): Uint8Array | null {
    const file = this.files.get(ino);
    if (file === undefined) return null;
    if (file.synced) return file.bytes;
    const units = Math.ceil(file.bytes.length / BLOCK_BYTES);
    const lands = plan.write(this.pending.length, units);
    if (!lands.some(Boolean)) return new Uint8Array(0);
    const out = new Uint8Array(file.bytes.length);
    lands.forEach((land, u) => {
      if (land)
        out.set(file.bytes.subarray(u * BLOCK_BYTES, (u + 1) * BLOCK_BYTES), u * BLOCK_BYTES);
    });
    return out;
  }
}

function applyOp(names: Map<string, number>, op: NameOp): void {
  if (op.kind === 'unlink') names.delete(op.name);
  else {
    names.set(op.to, op.ino);
    if (op.kind === 'rename') names.delete(op.from);
  }
}
