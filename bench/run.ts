/**
 * `npm run bench`: every figure next to this machine's own ceiling, measured in the same run.
 * Sections: XTS engine vs `openssl speed`, Argon2id tuning accuracy, and (when available)
 * the mounted volume vs an unencrypted ext4 image on the kernel loop driver.
 */
import { benchKdf } from './kdf.js';
import { benchXts } from './xts.js';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

if (want('xts')) {
  console.log('\n== XTS-AES-256 engine vs OpenSSL ==');
  await benchXts();
}
if (want('kdf')) {
  console.log('\n== Argon2id tuning (default target) ==');
  await benchKdf();
}
