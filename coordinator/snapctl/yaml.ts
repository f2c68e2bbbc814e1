/**
 * `-o yaml`: the same document as `-o json`, written as YAML (block style, two-space indent).
 * Strings are quoted whenever YAML could read them as something else (a number, true, null, a
 * date, a key, a comment), so reading the output back gives the JSON document exactly.
 */

/** Plain scalars YAML 1.1 or 1.2 parsers could take for another type, or that hold syntax. */
const NEEDS_QUOTES = /^$|^[\s]|[\s]$|^[-?:,[\]{}#&*!|>'"%@`~]|: |\s#|^(true|false|yes|no|on|off|null|y|n)$|^[-+]?(\.?\d|\.inf|\.nan)/i;

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = String(v);
  return NEEDS_QUOTES.test(s) || /[\n\r\t\\]/.test(s) || /[\u0000-\u001f]/.test(s) ? JSON.stringify(s) : s;
}

function isBlock(v: unknown): v is object {
  return typeof v === 'object' && v !== null && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
}

function emptyOf(v: unknown): string | undefined {
  if (Array.isArray(v) && v.length === 0) return '[]';
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) return '{}';
  return undefined;
}

function lines(v: unknown, indent: string): string[] {
  if (Array.isArray(v)) {
    return v.flatMap((item) => {
      if (!isBlock(item)) return [`${indent}- ${emptyOf(item) ?? scalar(item)}`];
      const [first, ...rest] = lines(item, `${indent}  `);
      return [`${indent}- ${(first ?? '').trimStart()}`, ...rest];
    });
  }
  return Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .flatMap(([k, x]) => (isBlock(x) ? [`${indent}${scalar(k)}:`, ...lines(x, `${indent}  `)] : [`${indent}${scalar(k)}: ${emptyOf(x) ?? scalar(x)}`]));
}

export function toYaml(value: unknown): string {
  // Through JSON first: what -o json would print, with its undefined fields left out.
  const doc: unknown = JSON.parse(JSON.stringify(value) ?? 'null');
  return isBlock(doc) ? `${lines(doc, '').join('\n')}\n` : `${emptyOf(doc) ?? scalar(doc)}\n`;
}
