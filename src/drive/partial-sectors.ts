/**
 * Partial-sector writes of a tool run, merged in memory before they reach the container
 * (SPEC §9.4 "Tool runs"), so that no tool ever leaves a sector half-updated through the drive.
 *
 * Why: the drive is served without the kernel's writeback cache (fuse-native, libfuse2), so
 * each write(2) of a tool arrives as its own request, and a request covering part of a sector
 * is a read-modify-write of that sector (SPEC §9.4). e2fsck and resize2fs update the primary
 * superblock field by field (libext2fs's write_primary_superblock writes only the 2- and
 * 4-byte pieces that changed, the checksum last), so one logical update reached the container
 * as up to a dozen separate read-modify-writes of one sector. A kill between two of them left
 * a superblock whose checksum does not match, and an ext4 under 128 MiB (one block group at
 * 4 KiB blocks) has no backup superblock: nothing could repair it. A disk does not do that: the
 * pieces meet in its page cache and go out together when the tool calls fsync.
 *
 * So here a write that covers part of a sector opens a "run": the whole sectors it touches,
 * decrypted, patched and held in memory. Later writes that touch the run or the sectors right
 * beside it are merged into it; reads are served with the run laid over what the container
 * holds. The run reaches the container as one write of whole sectors (one positional write,
 * so a kill cannot split a sector of it, SPEC §9.4) when the tool calls fsync, when a write
 * elsewhere arrives (so writes still reach the container in the order they were made), when it
 * would grow past {@link RUN_MAX_BYTES}, or when the job ends well. When the job fails or is
 * interrupted (a tool killed in the middle of its superblock update), the run is dropped, and
 * if this process dies it is lost: either way, as after a power cut on a disk, the tool's
 * writes since its last fsync may be missing, but no sector is torn.
 *
 * FUSE FLUSH (every close(2), also the one the kernel does for a tool that was killed) does not
 * commit the run: a close is no promise that the writes before it belong together.
 */
import { wipe } from '../../crypto/bytes.js';
import type { Volume } from '../volume/volume.js';

/**
 * Largest run held in memory: at most one drive request (128 KiB, fuse-adapter.ts), and within
 * the synchronous write limit of the drive (DRIVE_SYNC_IO), so a commit is one pwrite.
 */
export const RUN_MAX_BYTES = 131072;

/** The merged partial-sector writes of a tool run (see the module comment). */
export class PartialSectorRun {
  /** First sector of the run. */
  private first = 0;
  /** Plaintext of sectors [first, first + data.length / sectorSize), or null: no run. */
  private data: Uint8Array | null = null;

  constructor(
    private readonly volume: Volume,
    private readonly maxBytes = RUN_MAX_BYTES,
  ) {}

  /** Sectors held right now (for tests). */
  get heldSectors(): number {
    return this.data === null ? 0 : this.data.length / this.volume.sectorSize;
  }

  /** Write `data` at drive byte `offset`: merged into the run, or through to the volume. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (data.length === 0) return;
    const ss = this.volume.sectorSize;
    const first = Math.floor(offset / ss);
    const end = Math.ceil((offset + data.length) / ss);
    if (this.data !== null) {
      const runEnd = this.first + this.data.length / ss;
      const from = Math.min(first, this.first);
      const to = Math.max(end, runEnd);
      // Overlapping or adjacent, and still small enough: merge.
      if (first <= runEnd && end >= this.first && (to - from) * ss <= this.maxBytes) {
        await this.cover(from, to, offset, data.length);
        this.data!.set(data, offset - this.first * ss);
        return;
      }
      await this.commit(); // a write elsewhere: what came first reaches the container first
    }
    const aligned = offset % ss === 0 && data.length % ss === 0;
    if (aligned || (end - first) * ss > this.maxBytes) {
      await this.volume.write(offset, data); // whole sectors, or one large read-modify-write
      return;
    }
    await this.cover(first, end, offset, data.length);
    this.data!.set(data, offset - first * ss);
  }

  /** Lay the run over `target`, which holds the drive's bytes at `offset` read from the volume. */
  overlay(offset: number, target: Uint8Array): void {
    if (this.data === null || target.length === 0) return;
    const runStart = this.first * this.volume.sectorSize;
    const from = Math.max(offset, runStart);
    const to = Math.min(offset + target.length, runStart + this.data.length);
    if (from < to) target.set(this.data.subarray(from - runStart, to - runStart), from - offset);
  }

  /** Write the run to the volume (one write of whole sectors) and forget it. */
  async commit(): Promise<void> {
    const data = this.data;
    if (data === null) return;
    await this.volume.writeSectors(this.first, data);
    this.data = null;
    wipe(data);
  }

  /** Forget the run without writing it (the job failed or was interrupted). */
  discard(): void {
    if (this.data !== null) wipe(this.data);
    this.data = null;
  }

  /**
   * Make the run cover sectors [from, to), a range that contains its current sectors (or start
   * it there). Each new sector that the write at `offset` of `length` bytes covers only in part
   * is read from the volume; sectors it covers whole need no read.
   */
  private async cover(from: number, to: number, offset: number, length: number): Promise<void> {
    const ss = this.volume.sectorSize;
    const old = this.data;
    const oldFirst = this.first;
    const oldEnd = old === null ? oldFirst : oldFirst + old.length / ss;
    if (old !== null && from === oldFirst && to === oldEnd) return;
    const next = new Uint8Array((to - from) * ss);
    try {
      if (old !== null) next.set(old, (oldFirst - from) * ss);
      for (let s = from; s < to; s++) {
        if (old !== null && s >= oldFirst && s < oldEnd) continue;
        if (offset <= s * ss && offset + length >= (s + 1) * ss) continue; // written whole
        const sector = await this.volume.read(s * ss, ss);
        next.set(sector, (s - from) * ss);
        wipe(sector);
      }
    } catch (err) {
      wipe(next);
      throw err;
    }
    if (old !== null) wipe(old);
    this.first = from;
    this.data = next;
  }
}
