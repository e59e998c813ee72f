#!/usr/bin/env node
/**
 * The `cryptainer` command: parses arguments, runs one command, maps errors to the exit-code
 * table. The only caller of process.exit in the code base.
 */
import { Command, CommanderError } from 'commander';
import { CryptainerError } from '../../volume-format/errors.js';
import { registerCheck } from './commands/check.js';
import { registerCreate } from './commands/create.js';
import { registerInfo } from './commands/info.js';
import { registerAddKey } from './commands/add-key.js';
import { registerRemoveKey } from './commands/remove-key.js';
import { registerChangeKey } from './commands/change-key.js';
import { registerHeaderBackup } from './commands/header-backup.js';
import { registerHeaderRestore } from './commands/header-restore.js';
import { registerRepair } from './commands/repair.js';
import { registerMount } from './commands/mount.js';
import { registerUnmount } from './commands/unmount.js';
import { registerList } from './commands/list.js';
import { registerReencrypt } from './commands/reencrypt.js';
import { registerResize } from './commands/resize.js';
import { registerBenchmark } from './commands/benchmark.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { config } from '../config.js';

/** Build the program with every command registered. */
export function buildProgram(): Command {
  const program = new Command('cryptainer')
    .description('encrypted container volumes: XTS-AES-256 data, Argon2id keyslots, FUSE mount')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError(false);
  registerCreate(program);
  registerInfo(program);
  registerCheck(program);
  registerAddKey(program);
  registerRemoveKey(program);
  registerChangeKey(program);
  registerHeaderBackup(program);
  registerHeaderRestore(program);
  registerRepair(program);
  registerMount(program);
  registerUnmount(program);
  registerList(program);
  registerReencrypt(program);
  registerResize(program);
  registerBenchmark(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version output exit 0; commander already printed its one-line error.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (err instanceof CryptainerError) {
      process.stderr.write(`cryptainer: ${err.message}\n`);
      return exitCodeFor(err.code);
    }
    return internalError(err);
  }
}

/**
 * A bug or an unexpected system error: one line, never a stack trace (users see stderr, and
 * the background server's stderr is its server.log). `CRYPTAINER_DEBUG=1` adds the stack.
 */
function internalError(err: unknown): number {
  const detail = config.debug()
    ? ((err as Error)?.stack ?? String(err))
    : ((err as Error)?.message ?? String(err)).split('\n')[0];
  process.stderr.write(`cryptainer: internal error: ${detail}\n`);
  return EXIT.INTERNAL;
}

// Failures outside the command's own promise chain (a timer or event handler of the server)
// would otherwise print Node's stack trace.
process.on('uncaughtException', (err) => process.exit(internalError(err)));
process.on('unhandledRejection', (err) => process.exit(internalError(err)));

process.exit(await main(process.argv));
