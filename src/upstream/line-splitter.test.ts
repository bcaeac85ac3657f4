import { describe, expect, it } from 'vitest';
import { LineSplitter } from './line-splitter.ts';

function collect(maxLineBytes: number): { splitter: LineSplitter; lines: string[]; overflows: string[] } {
  const lines: string[] = [];
  const overflows: string[] = [];
  const splitter = new LineSplitter({
    maxLineBytes,
    onLine: (line) => lines.push(line.toString('utf8')),
    onOverflow: (head) => overflows.push(head.toString('utf8')),
  });
  return { splitter, lines, overflows };
}

describe('LineSplitter', () => {
  it('splits lines across chunks and strips \\r', () => {
    const { splitter, lines } = collect(100);
    splitter.push(Buffer.from('one\ntw'));
    splitter.push(Buffer.from('o\r\nthree'));
    splitter.push(Buffer.from('\n\n'));
    expect(lines).toEqual(['one', 'two', 'three', '']);
  });

  it('keeps a multibyte character that straddles two chunks intact', () => {
    const { splitter, lines } = collect(100);
    const bytes = Buffer.from('{"x":"é€😀"}\n', 'utf8');
    // Cut inside the two-byte é, then inside the four-byte emoji.
    const cuts = [7, 13, bytes.length];
    let at = 0;
    for (const cut of cuts) {
      splitter.push(bytes.subarray(at, cut));
      at = cut;
    }
    expect(lines).toEqual(['{"x":"é€😀"}']);
  });

  it('delivers a final line without newline at end()', () => {
    const { splitter, lines } = collect(100);
    splitter.push(Buffer.from('a\nlast'));
    splitter.end();
    splitter.end();
    expect(lines).toEqual(['a', 'last']);
  });

  it('reports a partial line that grows past the limit once and discards it up to the newline', () => {
    const { splitter, lines, overflows } = collect(8);
    splitter.push(Buffer.from('0123456'));
    splitter.push(Buffer.from('789abcdef'));
    splitter.push(Buffer.from('ghij\nok\n'));
    expect(overflows).toEqual(['01234567']);
    expect(lines).toEqual(['ok']);
  });

  it('reports a complete line over the limit, and accepts a line of exactly the limit', () => {
    const { splitter, lines, overflows } = collect(4);
    splitter.push(Buffer.from('abcd\r\nabcde\nxy\n'));
    expect(lines).toEqual(['abcd', 'xy']);
    expect(overflows).toEqual(['abcd']);
  });
});
