// SPEC §6 "Filesystem block size" (issue 12, D6): an ext4 with 1 KiB blocks on a volume with
// 4096-byte sectors is valid and mounts (the loop device then uses 512-byte logical blocks).
// Before, `check` passed but `mount` failed with exit 7.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loopSectorSize } from '../../src/drive/filesystem.js';
import { ext4 } from '../../src/drive/filesystems/ext4.js';
import { CHEAP_KDF } from '../helpers/cli.js';
import {
  cliOk as ok,
  forceCleanup,
  mountTestDir,
  sh,
  withRawDrive,
  withTimeout,
} from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('small blocks passphrase');
const vol = join(dir, 'v.img');

test('loopSectorSize: 4096 only for 4096-byte sectors under blocks of at least 4096', () => {
  assert.is(loopSectorSize(4096, 4096), 4096);
  assert.is(loopSectorSize(4096, 65536), 4096);
  assert.is(loopSectorSize(4096, 1024), 512);
  assert.is(loopSectorSize(4096, 2048), 512);
  assert.is(loopSectorSize(4096, null), 512);
  assert.is(loopSectorSize(512, 4096), 512);
  const head = new Uint8Array(4096);
  head[1080] = 0x53;
  head[1081] = 0xef;
  assert.is(ext4.blockSize(head), 1024);
  head[1024 + 24] = 2;
  assert.is(ext4.blockSize(head), 4096);
  head[1080] = 0;
  assert.is(ext4.blockSize(head), null);
});

test('1 KiB-block ext4 on 4096-byte sectors: check passes, mount works, data round-trips', async () => {
  await withTimeout(
    (async () => {
      ok([
        'create',
        vol,
        '--size',
        '16M',
        '--sector-size',
        '4096',
        '--filesystem',
        'none',
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
      ]);
      await withRawDrive(vol, mnt, pass, (drive) => {
        const r = sh('mkfs.ext4', ['-q', '-F', '-b', '1024', drive]);
        assert.is(r.status, 0, r.stderr);
      });
      ok(['check', vol, '--passphrase-file', pass]);
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      try {
        writeFileSync(join(mnt, 'f.txt'), 'small blocks');
      } finally {
        ok(['unmount', mnt]);
      }
      ok(['mount', vol, mnt, '--passphrase-file', pass, '--read-only']);
      try {
        assert.is(readFileSync(join(mnt, 'f.txt'), 'utf8'), 'small blocks');
      } finally {
        ok(['unmount', mnt]);
      }
    })(),
    240_000,
    'small-block ext4',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});
test.run();
