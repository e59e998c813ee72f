/**
 * `npm run bench`: every figure next to this machine's own ceiling, measured in the same run.
 * Sections: XTS engine vs `openssl speed`, Argon2id tuning accuracy, and (when available)
 * the mounted volume vs an unencrypted ext4 image on the kernel loop driver.
 */
import { spawnSync } from 'node:child_process';
import { benchKdf } from './kdf.js';
import { benchReencrypt } from './reencrypt.js';
import { benchMount, mountBenchOptionsFrom, printMountBench } from './mount.js';
import { benchXts } from './xts.js';

const only = process.argv.slice(2);
const names = only.filter((a) => !a.startsWith('--') && !/^\d/.test(a));
const want = (name: string) => names.length === 0 || names.includes(name);

if (want('xts')) {
  console.log('\n== XTS-AES-256 engine vs OpenSSL ==');
  await benchXts();
}
if (want('kdf')) {
  console.log('\n== Argon2id tuning (default target) ==');
  await benchKdf();
}
if (want('reencrypt')) {
  console.log('\n== Re-encryption of a 1 GiB volume vs dd read+write of the same file ==');
  await benchReencrypt();
}
if (want('mount')) {
  console.log('\n== Mounted volume vs unencrypted ext4 on the kernel loop driver ==');
  const missing = spawnSync('fio', ['--version']).status !== 0;
  if (process.getuid?.() !== 0 || missing) {
    console.log(`skipped: needs root${missing ? ' and fio' : ''} (loop devices, drop_caches)`);
  } else {
    printMountBench(await benchMount(mountBenchOptionsFrom(only)));
  }
}
