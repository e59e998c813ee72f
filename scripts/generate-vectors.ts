/**
 * Format vectors (SPEC §12): a valid worked example with every intermediate value, and one
 * file per malformed-header case with its `expect:` code. Deterministic: fixed inputs only.
 * `npm run vectors` writes them to test/vectors/; the test suite regenerates them in memory and
 * fails if a byte differs (a format change must be deliberate).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deriveHeaderMacKey, sha256 } from '../crypto/hkdf.js';
import { deriveArgon2id } from '../crypto/kdf.js';
import { XtsCipher } from '../crypto/xts.js';
import {
  BACKUP_FIELD_OFFSETS,
  FEATURE_AREA_BYTES,
  HEADER_FIELD_OFFSETS as H,
  KEYSLOT_COUNT,
} from '../volume-format/constants.js';
import { encodeHeaderBackup } from '../volume-format/backup.js';
import { noFeatures } from '../volume-format/features.js';
import { type HeaderFields, encodeHeaderCopy } from '../volume-format/header.js';
import {
  type ActiveKeyslot,
  type Keyslot,
  buildKeyslotAad,
  inactiveKeyslot,
  wrapMasterKey,
} from '../volume-format/keyslot.js';
import { planLayout } from '../volume-format/layout.js';
import { NEGATIVE_BACKUP_VECTORS, NEGATIVE_VECTORS } from './negative-vectors.js';
import { KEY_GENERATION_VECTORS, ORDER_VECTORS, PAIR_VECTORS } from './order-vectors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const seq = (n: number, start: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

/** The fixed inputs of the worked example. */
export const EXAMPLE = {
  passphrase: new TextEncoder().encode('cryptainer test vector'),
  uuid: Uint8Array.from([
    0x4a, 0x9f, 0x2c, 0x11, 0x8e, 0x07, 0x4b, 0x3d, 0xa1, 0x55, 0x60, 0x0c, 0xd2, 0x7e, 0x19, 0x83,
  ]),
  masterKey: seq(64, 0x20),
  kdfSalt: seq(32, 0x80),
  wrapNonce: seq(24, 0xc0),
  kdf: { timeCost: 1, memoryKiB: 64, parallelism: 1 },
  sectorSize: 4096,
  /** Two sectors: sector 0 as created (zeros), sector 1 holding a short text (SPEC §12.3). */
  dataSize: 8192,
  seqid: 1,
};

/** Build the example's header fields and intermediate values. */
export async function buildExample(): Promise<{
  fields: HeaderFields;
  kek: Uint8Array;
  aad: Uint8Array;
  macKey: Uint8Array;
  slot: ActiveKeyslot;
}> {
  const kek = await deriveArgon2id(EXAMPLE.passphrase, EXAMPLE.kdfSalt, EXAMPLE.kdf, 32);
  const keyslots: Keyslot[] = Array.from({ length: KEYSLOT_COUNT }, inactiveKeyslot);
  const slot = wrapMasterKey(kek, EXAMPLE.masterKey, EXAMPLE.uuid, 0, {
    kdf: EXAMPLE.kdf,
    kdfSalt: EXAMPLE.kdfSalt,
    wrapNonce: EXAMPLE.wrapNonce,
  });
  keyslots[0] = slot;
  const fields: HeaderFields = {
    ...planLayout(EXAMPLE.dataSize, EXAMPLE.sectorSize),
    seqid: EXAMPLE.seqid,
    uuid: EXAMPLE.uuid,
    features: noFeatures(),
    featureArea: new Uint8Array(FEATURE_AREA_BYTES),
    keyslots,
  };
  return {
    fields,
    kek,
    aad: buildKeyslotAad(EXAMPLE.uuid, 0, slot),
    macKey: deriveHeaderMacKey(EXAMPLE.masterKey, EXAMPLE.uuid),
    slot,
  };
}

/** The two copies of the worked example, with an optional key generation (SPEC §3.1). */
async function exampleCopies(
  keyGeneration = 0,
): Promise<{ a: Uint8Array; b: Uint8Array; ex: Awaited<ReturnType<typeof buildExample>> }> {
  const ex = await buildExample();
  const fields = { ...ex.fields, keyGeneration };
  return {
    a: encodeHeaderCopy(fields, 'A', ex.macKey),
    b: encodeHeaderCopy(fields, 'B', ex.macKey),
    ex,
  };
}

/** Recompute a copy's checksum after an edit (SPEC §3). */
function reseal(copy: Uint8Array): void {
  copy.set(sha256(copy.subarray(0, H.checksum)), H.checksum);
}

/** Render `name: value` lines, wrapping long hex at 128 characters for readability. */
function render(entries: Array<[string, string]>): string {
  const lines: string[] = [];
  for (const [k, v] of entries) {
    if (v.length <= 128) lines.push(`${k}: ${v}`);
    else {
      lines.push(`${k}:`);
      for (let i = 0; i < v.length; i += 128) lines.push(`  ${v.slice(i, i + 128)}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Parse a vector file back into its fields (continuation lines are joined). */
export function parseVector(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let key: string | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (line.startsWith('  ') && key) out.set(key, out.get(key)! + line.trim());
    else {
      const i = line.indexOf(':');
      key = line.slice(0, i);
      out.set(key, line.slice(i + 1).trim());
    }
  }
  return out;
}

/** Every vector file: name → contents. */
export async function generateVectors(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const { a: headerA, b: headerB, ex } = await exampleCopies();
  const xts = new XtsCipher(EXAMPLE.masterKey, EXAMPLE.sectorSize);
  const sector0 = xts.encryptSectors(new Uint8Array(EXAMPLE.sectorSize), 0);
  const sector1Plain = new TextEncoder().encode('hello, sector 1'.padEnd(4096, '.'));
  const sector1 = xts.encryptSectors(sector1Plain, 1);
  xts.dispose();
  files.set(
    'valid-minimal.vector',
    '# cryptainer format v1 worked example (SPEC §12.3). Generated by scripts/generate-vectors.ts.\n' +
      '# All byte strings are hex. header_a/header_b are the 4096-byte copies at offsets 0 and 32768.\n' +
      render([
        ['name', 'valid-minimal'],
        ['expect', 'ok'],
        ['passphrase', hex(EXAMPLE.passphrase)],
        ['uuid', hex(EXAMPLE.uuid)],
        ['master_key', hex(EXAMPLE.masterKey)],
        [
          'kdf',
          `argon2id v=19 t=${EXAMPLE.kdf.timeCost} m=${EXAMPLE.kdf.memoryKiB} p=${EXAMPLE.kdf.parallelism}`,
        ],
        ['kdf_salt', hex(EXAMPLE.kdfSalt)],
        ['kek', hex(ex.kek)],
        ['wrap_nonce', hex(EXAMPLE.wrapNonce)],
        ['keyslot_aad', hex(ex.aad)],
        ['wrapped_key', hex(ex.slot.wrappedKey)],
        ['k_mac', hex(ex.macKey)],
        ['sector_size', String(EXAMPLE.sectorSize)],
        ['data_offset', String(ex.fields.dataOffset)],
        ['data_size', String(ex.fields.dataSize)],
        ['header_a', hex(headerA)],
        ['header_b', hex(headerB)],
        ['header_a_mac', hex(headerA.subarray(H.headerMac, H.headerMac + 32))],
        ['header_a_checksum', hex(headerA.subarray(H.checksum))],
        ['sector_0_plaintext', 'zero bytes (4096)'],
        ['sector_0_ciphertext', hex(sector0)],
        ['sector_1_plaintext', hex(sector1Plain)],
        ['sector_1_ciphertext', hex(sector1)],
      ]),
  );
  // SPEC §3.1: the same example at key generation 1 (as after one re-encryption by a 1.1 writer).
  const gen1 = await exampleCopies(1);
  files.set(
    'valid-key-generation.vector',
    '# cryptainer format v1.1 worked example (SPEC §3.1): valid-minimal with key_generation 1\n' +
      '# (feature_compat 0x1, u64 at offset 116). Generated by scripts/generate-vectors.ts.\n' +
      render([
        ['name', 'valid-key-generation'],
        ['expect', 'ok'],
        ['key_generation', '1'],
        ['k_mac', hex(gen1.ex.macKey)],
        ['header_a', hex(gen1.a)],
        ['header_b', hex(gen1.b)],
      ]),
  );
  for (const v of [...NEGATIVE_VECTORS, ...KEY_GENERATION_VECTORS, ...ORDER_VECTORS]) {
    const copy = Uint8Array.from(headerA);
    v.mutate(copy, new DataView(copy.buffer));
    if (v.reseal !== false) reseal(copy);
    files.set(
      `${v.name}.vector`,
      `# cryptainer format v1 negative vector (SPEC §10, §12.2: the verdict on header_a alone, as\n` +
        `# copy A). Generated by scripts/generate-vectors.ts.\n` +
        `# header_a is the worked example's copy A after the change below` +
        `${v.reseal !== false ? ', with its checksum recomputed' : ''}.\n` +
        render([
          ['name', v.name],
          ['description', v.description],
          ['expect', v.expect],
          ['header_a', hex(copy)],
        ]),
    );
  }
  // SPEC §8 step 3: pairs of copies and the verdict on the volume.
  for (const v of PAIR_VECTORS) {
    const a = Uint8Array.from(headerA);
    const b = Uint8Array.from(headerB);
    v.mutateA?.(a, new DataView(a.buffer));
    v.mutateB?.(b, new DataView(b.buffer));
    if (v.mutateA && v.resealA !== false) reseal(a);
    if (v.mutateB && v.resealB !== false) reseal(b);
    files.set(
      `${v.name}.vector`,
      `# cryptainer format v1 pair vector (SPEC §8 step 3, §12.2: the verdict on the volume whose\n` +
        `# copies are header_a and header_b). Generated by scripts/generate-vectors.ts.\n` +
        `# Both are the worked example's copies after the change below, checksums recomputed\n` +
        `# unless the description says it is broken.\n` +
        render([
          ['name', v.name],
          ['description', v.description],
          ['expect', v.expect],
          ['header_a', hex(a)],
          ['header_b', hex(b)],
        ]),
    );
  }
  // SPEC §13: the worked example's header as a backup file, and one file per malformed backup.
  const backup = encodeHeaderBackup(headerA, headerB);
  files.set(
    'valid-header-backup.vector',
    '# cryptainer header backup of the worked example (SPEC §13.1): header_a and header_b of\n' +
      '# valid-minimal.vector at offsets 512 and 4608. Generated by scripts/generate-vectors.ts.\n' +
      render([
        ['name', 'valid-header-backup'],
        ['expect', 'ok'],
        ['backup', hex(backup)],
      ]),
  );
  for (const v of NEGATIVE_BACKUP_VECTORS) {
    let bytes: Uint8Array = Uint8Array.from(backup);
    const replaced = v.mutate(bytes, new DataView(bytes.buffer));
    if (replaced instanceof Uint8Array) bytes = replaced;
    for (const at of v.resealCopies ?? []) {
      bytes.set(sha256(bytes.subarray(at, at + H.checksum)), at + H.checksum);
    }
    const sumAt = BACKUP_FIELD_OFFSETS.checksum;
    if (v.reseal !== false) bytes.set(sha256(bytes.subarray(0, sumAt)), sumAt);
    files.set(
      `backup-${v.name}.vector`,
      `# cryptainer header backup negative vector (SPEC §13.3). Generated by scripts/generate-vectors.ts.\n` +
        `# backup is valid-header-backup.vector's file after the change below` +
        `${v.reseal !== false ? ', with its checksum recomputed' : ''}.\n` +
        render([
          ['name', `backup-${v.name}`],
          ['description', v.description],
          ['expect', v.expect],
          ['backup', hex(bytes)],
        ]),
    );
  }
  return files;
}

/** Directory the vectors live in (source tree, not dist/). */
export function vectorDir(): string {
  return join(fileURLToPath(new URL('../../test/vectors/', import.meta.url)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = vectorDir();
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.vector')) rmSync(join(dir, f));
  const files = await generateVectors();
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  console.log(`wrote ${files.size} vectors to ${dir}`);
}
