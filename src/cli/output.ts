/**
 * Where output goes: results to stdout (plain or `--json`), everything else (prompts, progress,
 * warnings) to stderr so `--json` output stays machine-readable.
 */

/** Print a result line to stdout. */
export function out(line: string): void {
  process.stdout.write(line + '\n');
}

/** Print a JSON document to stdout. */
export function outJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Print a note or warning to stderr. */
export function note(line: string): void {
  process.stderr.write(line + '\n');
}

/** Human-readable binary size: 67108864 → "64 MiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${units[unit]}`;
}

/**
 * A progress line on stderr, redrawn in place, shown only when stderr is a terminal.
 * Returns an update function and a `done` that clears the line.
 */
export function progress(label: string): {
  update: (done: number, total: number) => void;
  done: () => void;
} {
  const tty = process.stderr.isTTY === true;
  const start = Date.now();
  let last = 0;
  return {
    update(done, total) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const secs = Math.max((now - start) / 1000, 0.001);
      const rate = done / secs;
      const eta = rate > 0 ? Math.round((total - done) / rate) : 0;
      const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
      process.stderr.write(
        `\r${label}: ${pct}% ${formatSize(done)} of ${formatSize(total)}, ` +
          `${formatSize(Math.round(rate))}/s, ETA ${eta}s   `,
      );
    },
    done() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}
