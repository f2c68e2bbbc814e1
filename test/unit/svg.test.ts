import { describe, expect, it } from 'vitest';
import { escapeXml, renderSpaceTimeSvg, SVG_LIMITS } from '../../simulations/svg.js';
import type { TraceEvent } from '../../simulations/types.js';
import { simResult } from '../fixtures/sim-result.js';

/**
 * A small well-formedness check, enough to catch what string-built XML gets wrong: unbalanced or
 * misnested tags, unquoted attributes, raw `<` or `&` in text or attribute values, duplicate attributes.
 * Returns the problems found (empty when the document is well formed) and the elements by name.
 */
function checkXml(xml: string): { problems: string[]; elements: { name: string; attrs: Record<string, string> }[] } {
  const problems: string[] = [];
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  const stack: string[] = [];
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
  const badText = (text: string): boolean => text.replace(entity, '').includes('&') || text.includes('<');
  let at = 0;
  while (at < xml.length) {
    const open = xml.indexOf('<', at);
    const text = xml.slice(at, open < 0 ? xml.length : open);
    if (text.replace(entity, '').includes('&') || text.includes('>')) problems.push(`bad text: ${text.slice(0, 40)}`);
    if (open < 0) break;
    const close = xml.indexOf('>', open);
    if (close < 0) {
      problems.push('unterminated tag');
      break;
    }
    const tag = xml.slice(open + 1, close);
    at = close + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const top = stack.pop();
      if (top !== name) problems.push(`</${name}> closes <${top ?? 'nothing'}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const nameMatch = /^([A-Za-z][\w:-]*)/.exec(body);
    if (nameMatch === null) {
      problems.push(`bad tag <${tag.slice(0, 30)}>`);
      continue;
    }
    const name = nameMatch[1]!;
    const rest = body.slice(name.length);
    const attrs: Record<string, string> = {};
    const attrRe = /\s+([A-Za-z][\w:-]*)="([^"]*)"/y;
    let pos = 0;
    while (pos < rest.trimEnd().length) {
      attrRe.lastIndex = pos;
      const m = attrRe.exec(rest);
      if (m === null) {
        problems.push(`bad attributes in <${name}${rest.slice(0, 40)}`);
        break;
      }
      if (m[1]! in attrs) problems.push(`duplicate attribute ${m[1]} in <${name}>`);
      if (badText(m[2]!)) problems.push(`bad attribute value ${m[1]}="${m[2]}"`);
      attrs[m[1]!] = m[2]!;
      pos = attrRe.lastIndex;
    }
    elements.push({ name, attrs });
    if (!selfClosing) stack.push(name);
  }
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(', ')}`);
  return { problems, elements };
}

const byClass = (svg: string, cls: string) => checkXml(svg).elements.filter((e) => e.attrs['class'] === cls);

describe('space-time diagram', () => {
  const svg = renderSpaceTimeSvg(simResult());

  it('is a standalone, well-formed SVG document', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    const { problems, elements } = checkXml(svg);
    expect(problems).toEqual([]);
    expect(elements[0]!.name).toBe('svg');
    // A viewBox and no fixed size: the picture scales to the page or window that shows it.
    expect(elements[0]!.attrs['width']).toBeUndefined();
    expect(elements[0]!.attrs['height']).toBeUndefined();
    expect(elements[0]!.attrs['viewBox']).toMatch(/^0 0 [\d.]+ [\d.]+$/);
  });

  it('draws one horizontal line per process, labelled on the left, in the order of the result', () => {
    const lines = byClass(svg, 'process-line');
    expect(lines.map((l) => l.attrs['data-process'])).toEqual(['a', 'b', 'c']);
    for (const l of lines) expect(l.attrs['y1']).toBe(l.attrs['y2']);
    const ys = lines.map((l) => Number(l.attrs['y1']));
    expect([...ys].sort((p, q) => p - q)).toEqual(ys);
    expect(svg).toMatch(/class="process-label"[^>]*>a<\/text>/);
  });

  it('draws every message as an arrow from (sender, sent) to (receiver, delivered)', () => {
    const plain = byClass(svg, 'message');
    const recorded = byClass(svg, 'channel-state-message');
    expect(plain).toHaveLength(2); // a->b #1 delivered, a->b #2 still in flight
    expect(recorded).toHaveLength(1);
    const delivered = plain.filter((m) => m.attrs['marker-end'] !== undefined);
    expect(delivered).toHaveLength(1);
    // The message a->b goes down the page (a is above b) and forward in time.
    const m = delivered[0]!.attrs;
    expect(Number(m['x2'])).toBeGreaterThan(Number(m['x1']));
    expect(Number(m['y2'])).toBeGreaterThan(Number(m['y1']));
  });

  it('highlights channel-state messages with their own colour and a thicker stroke', () => {
    expect(svg).toMatch(/<g class="channel-state" clip-path="url\(#plot-area\)" stroke="#ff7f0e" stroke-width="2\.6"/);
    expect(svg).toMatch(/<g class="messages" clip-path="url\(#plot-area\)" stroke="#9e9e9e" stroke-width="0\.9"/);
    expect(svg).toContain('recorded in the channel state of C1');
  });

  it('draws barriers dashed, coloured by checkpoint, with arrow heads', () => {
    const barriers = byClass(svg, 'barrier');
    expect(barriers).toHaveLength(3);
    expect(new Set(barriers.map((b) => b.attrs['stroke'])).size).toBe(1);
    expect(barriers[0]!.attrs['stroke']).not.toBe('#9e9e9e');
    expect(svg).toMatch(/<g class="barriers"[^>]*stroke-dasharray="6 3"/);
    for (const b of barriers) expect(b.attrs['marker-end']).toMatch(/^url\(#arrow-barrier-\d\)$/);
  });

  it('draws the cut of a completed checkpoint through its snapshot dots and none for an aborted one', () => {
    const cuts = byClass(svg, 'cut');
    expect(cuts.map((c) => c.attrs['data-checkpoint'])).toEqual(['1']);
    const points = cuts[0]!.attrs['points']!.split(' ');
    expect(points).toHaveLength(3);
    const dots = byClass(svg, 'snapshot').filter((d) => d.attrs['data-checkpoint'] === '1');
    expect(points).toEqual(dots.map((d) => `${d.attrs['cx']},${d.attrs['cy']}`));
  });

  it('draws the snapshot of an unfinished checkpoint as a hollow dot', () => {
    const dot = byClass(svg, 'snapshot').find((d) => d.attrs['data-checkpoint'] === '2')!;
    expect(dot.attrs['fill']).toBe('#ffffff');
  });

  it('marks crashes and recoveries', () => {
    expect(byClass(svg, 'crash')).toHaveLength(1);
    expect(byClass(svg, 'recover')).toHaveLength(1);
    expect(svg).toContain('recover from C1');
  });

  it('has a legend and a title naming the scenario, the algorithm and the seed', () => {
    expect(svg).toContain('<g class="legend"');
    for (const label of ['message', 'channel-state message', 'barrier', 'snapshot', 'cut of a completed checkpoint', 'crash', 'recovery']) {
      expect(svg).toContain(`>${label}`);
    }
    expect(svg).toContain('three-processes · algorithm chandy-lamport · seed 7');
  });

  it('escapes names that contain XML characters', () => {
    const weird = simResult({
      scenario: 'a<b> & "c"',
      processes: ['x&y', '<z>'],
      channels: [{ id: 'x&y-><z>', from: 'x&y', to: '<z>' }],
      trace: [
        { kind: 'message', channel: 'x&y-><z>', from: 'x&y', to: '<z>', seq: 1, sentAtMs: 1, deliveredAtMs: 2, recordedIn: [] },
      ],
    });
    const out = renderSpaceTimeSvg(weird);
    expect(checkXml(out).problems).toEqual([]);
    expect(out).toContain('a&lt;b&gt; &amp; &quot;c&quot;');
    expect(out).toContain('data-process="x&amp;y"');
    expect(out).not.toContain('<z>');
  });

  it('renders the same bytes for the same result', () => {
    expect(renderSpaceTimeSvg(simResult())).toBe(svg);
  });

  it('scales its width with the length of the run', () => {
    const long = simResult({
      trace: [{ kind: 'message', channel: 'a->b', from: 'a', to: 'b', seq: 1, sentAtMs: 1, deliveredAtMs: 1000, recordedIn: [] }],
    });
    const width = (s: string) => Number(checkXml(s).elements[0]!.attrs['viewBox']!.split(' ')[2]);
    expect(width(renderSpaceTimeSvg(long))).toBeGreaterThan(width(svg));
  });

  describe('a view', () => {
    const xOfTick = (doc: string, label: string): number | undefined => {
      const m = new RegExp(`<text x="([\\d.]+)"[^>]*>${label}</text>`).exec(doc);
      return m === null ? undefined : Number(m[1]);
    };

    it('of a time window spans only that window: its ticks, its snapshots, a clip at its edges', () => {
      const windowed = renderSpaceTimeSvg(simResult(), { fromMs: 6, toMs: 12 });
      expect(checkXml(windowed).problems).toEqual([]);
      // Ticks start at the window, not at 0.
      expect(xOfTick(windowed, '0')).toBeUndefined();
      expect(xOfTick(windowed, '6')).toBeDefined();
      expect(xOfTick(windowed, '12')).toBeDefined();
      // Of the snapshots at 5 (a), 7 (b), 8 (c) and 13 (a), only b's and c's lie in the window.
      expect(byClass(windowed, 'snapshot')).toHaveLength(2);
      expect(windowed).toContain('b snapshots for C1 at 7 ms');
      expect(windowed).toContain('c snapshots for C1 at 8 ms');
      expect(windowed).not.toContain('a snapshots for C1');
      // The message a->b #1 (1..4 ms) is wholly outside; b->a #1 (2..9 ms) crosses the edge and is clipped.
      expect(windowed).not.toContain('a-&gt;b #1:');
      expect(windowed).toContain('b-&gt;a #1:');
      expect(windowed).toContain('<clipPath id="plot-area">');
      expect(windowed).toContain('window 6..12 ms');
    });

    it('of some processes draws only their lines and the messages between them', () => {
      const ab = renderSpaceTimeSvg(simResult(), { processes: ['b', 'a'] });
      expect(checkXml(ab).problems).toEqual([]);
      // In the run's order, whatever the order asked.
      expect(byClass(ab, 'process-line').map((e) => e.attrs['data-process'])).toEqual(['a', 'b']);
      expect(ab).toContain('a-&gt;b #1:');
      // b->c has an end on a hidden process.
      expect(byClass(ab, 'barrier').length).toBe(byClass(svg, 'barrier').filter((_, i) => i !== 2).length);
      expect(ab).toContain('2 of 3 processes');
    });
  });

  it('stays legible for twelve processes: rows do not overlap and every process is labelled', () => {
    const processes = Array.from({ length: 12 }, (_, i) => `p${i}`);
    const out = renderSpaceTimeSvg(simResult({ processes, channels: [], trace: [] }));
    const ys = byClass(out, 'process-line').map((l) => Number(l.attrs['y1']));
    expect(ys).toHaveLength(12);
    for (let i = 1; i < ys.length; i++) expect(ys[i]! - ys[i - 1]!).toBeGreaterThanOrEqual(20);
  });

  it('caps the messages it draws on huge runs and says so, keeping every channel-state message', () => {
    const n = SVG_LIMITS.messagesDrawnMax * 3;
    const trace: TraceEvent[] = Array.from({ length: n }, (_, i) => ({
      kind: 'message',
      channel: 'a->b',
      from: 'a',
      to: 'b',
      seq: i + 1,
      sentAtMs: i,
      deliveredAtMs: i + 2,
      recordedIn: i % 1000 === 0 ? [1] : [],
    }));
    const out = renderSpaceTimeSvg(simResult({ trace }));
    const drawn = byClass(out, 'message').length + byClass(out, 'channel-state-message').length;
    expect(drawn).toBe(SVG_LIMITS.messagesDrawnMax);
    expect(byClass(out, 'channel-state-message')).toHaveLength(Math.ceil(n / 1000));
    expect(out).toContain(`showing ${SVG_LIMITS.messagesDrawnMax} of ${n} messages`);
  });

  it('without a trace still draws the process lines and says why nothing else is there', () => {
    const out = renderSpaceTimeSvg(simResult({ trace: undefined }));
    expect(checkXml(out).problems).toEqual([]);
    expect(byClass(out, 'process-line')).toHaveLength(3);
    expect(out).toContain('no trace was recorded');
  });

  it('escapeXml escapes the five XML special characters', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
  });
});
