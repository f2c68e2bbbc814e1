/** Plain-text tables and the small formats snapctl shows (durations, sizes, times). */

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function durationText(ms: number): string {
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m${Math.round((ms % 60_000) / 1_000)}s`;
}

export function bytesText(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)}${units[u]}`;
}

/** ISO time to the second; '-' for 0/absent. */
export function timeText(unixMs: number | undefined): string {
  if (unixMs === undefined || unixMs <= 0) return '-';
  return new Date(unixMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** How long ago, kubectl style: 42s, 5m, 3h, 12d (the largest unit only). */
export function ageText(ms: number): string {
  const sec = Math.max(0, Math.floor(ms / 1_000));
  if (sec < 60) return `${sec}s`;
  if (sec < 3_600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86_400) return `${Math.floor(sec / 3_600)}h`;
  return `${Math.floor(sec / 86_400)}d`;
}
