/**
 * The cryptainer library: create, open and use encrypted container volumes from Node.
 *
 * ```ts
 * import { createVolume, openVolume } from 'cryptainer';
 * const v = await openVolume('v.img', { passphrase: 'correct horse' });
 * await v.write(1000, Buffer.from('hello'));
 * await v.close(); // flushes and wipes the keys
 * ```
 */
export { createVolume, type CreateOptions } from './volume/create.js';
export { openVolume, inspectVolume, type OpenOptions } from './volume/open.js';
export { Volume, type OpenedHeader } from './volume/volume.js';
export type { UnlockSecret } from './volume/secret.js';
export { planKdfParams, type KdfTuning } from './volume/kdf-tuning.js';
export type { Storage } from './io/storage.js';
export type { Rng } from './rng.js';
export * from '../volume-format/errors.js';
export type { HeaderFields } from '../volume-format/header.js';
export type { HeaderChoice, CopyReport, CopyStatus } from '../volume-format/header-copies.js';
export type { Argon2idParams } from '../crypto/kdf.js';
export {
  addKeyslot,
  removeKeyslot,
  changeKeyslot,
  activeKeyslots,
  type AddKeyslotOptions,
  type RemoveKeyslotOptions,
  type NewKeyKdf,
} from './volume/keyslots.js';
export {
  writeHeaderBackup,
  readHeaderBackup,
  planRestoreTarget,
  restoreHeaderBackup,
  type RestoreTarget,
  type RestoreOptions,
} from './volume/backup.js';
export { repairVolume, type RepairReport, type RepairedCopy } from './volume/repair.js';
export type { HeaderBackup } from '../volume-format/backup.js';
export {
  startReencrypt,
  resumeReencrypt,
  type StartReencryptOptions,
  type ResumeReencryptOptions,
  type ReencryptRunOptions,
  type ReencryptReport,
  type RecoveredSegment,
} from './volume/reencrypt.js';
export { resizeVolume, type ResizeOptions, type ResizeReport } from './drive/resize.js';
export { growVolumeData, shrinkVolumeData } from './volume/resize.js';
export {
  planResize,
  parseSizeRequest,
  type ResizePlan,
  type SizeRequest,
} from '../volume-format/resize.js';
export {
  reencryptProgress,
  type ReencryptProgress,
  type Resilience,
} from '../volume-format/reencrypt-state.js';
