/**
 * Output for people: aligned tables and a progress bar; `--json` bypasses all of it. Every cell
 * and label is escaped (sdk/text.ts): what a table shows comes from stores, publishers and
 * apps, and must not move the cursor, recolour the screen or start a line of its own.
 */
import { escapeControls } from '../../sdk/text.js';

export function table(rows: Record<string, unknown>[], columns: [key: string, title: string][]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((row) =>
    columns.map(([key]) => {
      const value = row[key];
      return value === undefined || value === null ? '' : escapeControls(String(value));
    }),
  );
  const widths = columns.map(([, title], index) => Math.max(title.length, ...cells.map((line) => line[index]!.length)));
  const render = (line: string[]): string =>
    line
      .map((cell, index) => cell.padEnd(widths[index]!))
      .join('  ')
      .trimEnd();
  return [render(columns.map(([, title]) => title)), render(widths.map((width) => '-'.repeat(width))), ...cells.map(render)].join('\n');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A one-line progress bar on a terminal; on a pipe, one line per quarter so logs stay short. */
export class ProgressLine {
  #lastQuarter = -1;
  readonly #label: string;
  constructor(
    private readonly stream: NodeJS.WriteStream,
    label: string,
  ) {
    this.#label = escapeControls(label);
  }

  update(percent: number, rawDetail: string): void {
    const detail = escapeControls(rawDetail);
    const clamped = Math.max(0, Math.min(100, Math.floor(percent)));
    if (this.stream.isTTY) {
      const filled = Math.round(clamped / 4);
      this.stream.write(`\r${this.#label} [${'#'.repeat(filled)}${'.'.repeat(25 - filled)}] ${String(clamped).padStart(3)}% ${detail}\u001b[K`);
    } else {
      const quarter = Math.floor(clamped / 25);
      if (quarter !== this.#lastQuarter) {
        this.#lastQuarter = quarter;
        this.stream.write(`${this.#label}: ${clamped}% ${detail}\n`);
      }
    }
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}
