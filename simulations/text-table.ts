/**
 * Plain-text tables with aligned columns. Output is pure text (no colour codes) unless the caller
 * asks for colour, so piped or redirected output is byte-identical from run to run and easy to diff.
 */

export type Align = 'left' | 'right';

export interface Column {
  readonly header: string;
  readonly align: Align;
}

/** A cell's text plus an optional ANSI colour applied after padding (so alignment ignores the codes). */
export type Cell = string | { readonly text: string; readonly color?: Color };

export type Color = 'green' | 'red' | 'yellow';

const ANSI: Readonly<Record<Color, string>> = { green: '\u001b[32m', red: '\u001b[31m', yellow: '\u001b[33m' };
const ANSI_RESET = '\u001b[0m';
const COLUMN_GAP = '  ';

export function renderTable(columns: readonly Column[], rows: readonly (readonly Cell[])[], color = false): string {
  const texts = rows.map((row) => columns.map((_, i) => cellText(row[i])));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...texts.map((row) => row[i]!.length)));
  const line = (cells: readonly string[], colors: readonly (Color | undefined)[]): string =>
    cells
      .map((text, i) => {
        const padded = columns[i]!.align === 'right' ? text.padStart(widths[i]!) : text.padEnd(widths[i]!);
        const c = colors[i];
        return color && c !== undefined ? `${ANSI[c]}${padded}${ANSI_RESET}` : padded;
      })
      .join(COLUMN_GAP)
      .trimEnd();
  const out = [
    line(columns.map((c) => c.header), []),
    widths.map((w) => '-'.repeat(w)).join(COLUMN_GAP),
    ...rows.map((row, r) => line(texts[r]!, columns.map((_, i) => cellColor(row[i])))),
  ];
  return out.join('\n');
}

function cellText(cell: Cell | undefined): string {
  if (cell === undefined) return '';
  return typeof cell === 'string' ? cell : cell.text;
}

function cellColor(cell: Cell | undefined): Color | undefined {
  return cell === undefined || typeof cell === 'string' ? undefined : cell.color;
}

/**
 * A fixed number of decimals, never `-0` and never exponent notation, so the same value always prints
 * the same way. Non-finite values (a mean of nothing) print as `-`.
 */
export function fixed(value: number, decimals: number): string {
  if (!Number.isFinite(value)) return '-';
  const text = value.toFixed(decimals);
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}
