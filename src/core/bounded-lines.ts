/**
 * Splits a child's output stream into log lines with a bounded buffer. A line longer than
 * `maxLineBytes` keeps its first `maxLineBytes` bytes and ends with a marker naming how many bytes
 * were left out; the rest is counted, never kept. So the host's memory stays bounded whatever a
 * model prints (readline kept a partial line without limit: 700 MB without a newline ended the
 * host with "RangeError: Invalid string length").
 */
import type { Readable } from 'node:stream';

/** A log line's size cap, in bytes. */
export const MAX_LOG_LINE_BYTES = 16 * 1024;

/** The longest line as logged: a cut line's head plus its marker. */
export const MAX_CUT_LINE_BYTES = MAX_LOG_LINE_BYTES + 64;

/** The cut line as logged: its head, then how much of it is not shown. */
export function cutMarker(omittedBytes: number): string {
  return `… [line cut: ${omittedBytes} bytes]`;
}

/** Cuts a string already in memory (a log message sent over the queue) the same way. */
export function boundLine(line: string, maxLineBytes = MAX_LOG_LINE_BYTES): string {
  // Cheap test first: a string of n UTF-16 units takes at most 3n UTF-8 bytes.
  if (line.length * 3 <= maxLineBytes) return line;
  const bytes = Buffer.byteLength(line);
  if (bytes <= maxLineBytes) return line;
  const shown = decodeHead(Buffer.from(line.slice(0, maxLineBytes)).subarray(0, maxLineBytes));
  return `${shown}${cutMarker(bytes - Buffer.byteLength(shown))}`;
}

/** Calls `onLine` for every line of `stream` (without its newline), at most `maxLineBytes` + marker long. */
export function readBoundedLines(stream: Readable, onLine: (line: string) => void, maxLineBytes = MAX_LOG_LINE_BYTES): void {
  let parts: Buffer[] = [];
  let kept = 0;
  let omitted = 0;
  const flush = (): void => {
    if (kept === 0 && omitted === 0) return;
    const head = Buffer.concat(parts, kept);
    parts = [];
    kept = 0;
    if (omitted === 0) {
      const line = head.toString('utf8');
      onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
      return;
    }
    const shown = decodeHead(head);
    onLine(`${shown}${cutMarker(omitted + head.length - Buffer.byteLength(shown))}`);
    omitted = 0;
  };
  const take = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    const room = maxLineBytes - kept;
    if (room <= 0) {
      omitted += chunk.length;
      return;
    }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    // Copied: a view would keep the whole chunk (up to 64 KiB) alive for a few bytes.
    parts.push(Buffer.from(part));
    kept += part.length;
    omitted += chunk.length - part.length;
  };
  stream.on('data', (data: Buffer | string) => {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      take(chunk.subarray(start, nl));
      flush();
      start = nl + 1;
    }
    take(chunk.subarray(start));
  });
  stream.once('end', flush);
}

/** Decodes a line's head cut at the cap; a character cut in the middle at its end is left out. */
function decodeHead(head: Buffer): string {
  const text = head.toString('utf8');
  return text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
}
