/**
 * The stub-output line splitter on its own: lines across chunks, CRLF, a line cut at the cap with
 * its marker (never inside a UTF-8 character), and the same cut for a string already in memory.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { boundLine, cutMarker, readBoundedLines } from '../src/core/bounded-lines.js';

function linesOf(chunks: (string | Buffer)[], max: number): Promise<string[]> {
  const stream = new PassThrough();
  const lines: string[] = [];
  readBoundedLines(stream, (l) => lines.push(l), max);
  const ended = new Promise<string[]>((resolve) => stream.once('end', () => resolve(lines)));
  for (const c of chunks) stream.write(c);
  stream.end();
  stream.resume();
  return ended;
}

describe('readBoundedLines', () => {
  it('joins a line split across chunks, strips CRLF, keeps the last line without a newline', async () => {
    expect(await linesOf(['ab', 'c\r\nde', 'f\n\ng'], 100)).toEqual(['abc', 'def', 'g']);
  });

  it('cuts a long line at the cap and counts what it left out, across chunks', async () => {
    expect(await linesOf(['0123', '45678', '9\nok\n'], 6)).toEqual([`012345${cutMarker(4)}`, 'ok']);
  });

  it('never cuts inside a UTF-8 character: the partial one counts as left out', async () => {
    // 'é' is 2 bytes: the cap of 4 falls inside the second one.
    expect(await linesOf([Buffer.from('aéé!\n')], 4)).toEqual([`aé${cutMarker(3)}`]);
  });
});

describe('boundLine', () => {
  it('leaves short lines alone and cuts long ones the same way', () => {
    expect(boundLine('short', 10)).toBe('short');
    expect(boundLine('x'.repeat(25), 10)).toBe(`${'x'.repeat(10)}${cutMarker(15)}`);
    expect(boundLine('aéé!', 4)).toBe(`aé${cutMarker(3)}`);
  });
});
