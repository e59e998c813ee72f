/**
 * `npm run bench`: every figure next to this machine's own ceiling, measured in the same run.
 * Sections: XTS engine vs `openssl speed`, Argon2id tuning accuracy, the mounted volume vs an
 * unencrypted ext4 image on the kernel loop driver and gocryptfs (root, with fio installed;
 * medians and spread of interleaved repetitions, plus the serving process's peak RSS), and
 * re-encryption of a 1 GiB volume vs `dd` reading and rewriting the same file.
 *
 * `npm run bench -- xts kdf mount reencrypt` picks sections; `--reps N`, `--fio-seconds S`,
 * `--seq-mib M`, `--big-mib M` and `--no-gocryptfs` tune the mount section.
 */
import { spawnSync } from 'node:child_process';
import { benchKdf } from './kdf.js';
import { benchMount, mountBenchOptionsFrom, printMountBench } from './mount.js';
import { benchReencrypt } from './reencrypt.js';
import { benchXts } from './xts.js';

const args = process.argv.slice(2);
const only = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const want = (name: string) => only.length === 0 || only.includes(name);

if (want('xts')) {
  console.log('\n== XTS-AES-256 engine vs OpenSSL ==');
  await benchXts();
}
if (want('kdf')) {
  console.log('\n== Argon2id tuning (default target) ==');
  await benchKdf();
}
if (want('mount')) {
  console.log('\n== mounted volume vs unencrypted ext4 on the kernel loop driver ==');
  const root = process.getuid?.() === 0;
  const fio = spawnSync('fio', ['--version']).status === 0;
  if (!root || !fio) {
    console.log(`skipped: needs root and fio (${root ? 'fio missing' : 'not root'})`);
  } else {
    printMountBench(await benchMount(mountBenchOptionsFrom(args)));
  }
}
if (want('reencrypt')) {
  console.log('\n== re-encryption vs dd read+write of the same container ==');
  await benchReencrypt();
}
