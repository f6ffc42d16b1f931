/**
 * Makes the OCR pipeline's test images (test/fixtures/ocr/*.png): lines of text drawn with a
 * built-in 5×7 bitmap font, scaled up and softened, black on white; some lines rotated 180° so
 * the direction classifier has both answers to give. Run once, commit the PNGs:
 *
 *   npx tsx scripts/make-ocr-fixtures.ts
 *
 * FIXTURES below lists each image with its lines (top to bottom) and which are upside down;
 * test/bls-ocr.test.ts expects those transcripts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';

const OUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/ocr');

/** 5×7 glyphs, one string of 5 bits per row, top row first. */
const FONT: Record<string, string[]> = {
  A: ['01110', '10001', '10001', '11111', '10001', '10001', '10001'],
  B: ['11110', '10001', '10001', '11110', '10001', '10001', '11110'],
  C: ['01110', '10001', '10000', '10000', '10000', '10001', '01110'],
  D: ['11100', '10010', '10001', '10001', '10001', '10010', '11100'],
  E: ['11111', '10000', '10000', '11110', '10000', '10000', '11111'],
  F: ['11111', '10000', '10000', '11110', '10000', '10000', '10000'],
  G: ['01110', '10001', '10000', '10111', '10001', '10001', '01111'],
  H: ['10001', '10001', '10001', '11111', '10001', '10001', '10001'],
  I: ['01110', '00100', '00100', '00100', '00100', '00100', '01110'],
  J: ['00111', '00010', '00010', '00010', '00010', '10010', '01100'],
  K: ['10001', '10010', '10100', '11000', '10100', '10010', '10001'],
  L: ['10000', '10000', '10000', '10000', '10000', '10000', '11111'],
  M: ['10001', '11011', '10101', '10101', '10001', '10001', '10001'],
  N: ['10001', '10001', '11001', '10101', '10011', '10001', '10001'],
  O: ['01110', '10001', '10001', '10001', '10001', '10001', '01110'],
  P: ['11110', '10001', '10001', '11110', '10000', '10000', '10000'],
  Q: ['01110', '10001', '10001', '10001', '10101', '10010', '01101'],
  R: ['11110', '10001', '10001', '11110', '10100', '10010', '10001'],
  S: ['01111', '10000', '10000', '01110', '00001', '00001', '11110'],
  T: ['11111', '00100', '00100', '00100', '00100', '00100', '00100'],
  U: ['10001', '10001', '10001', '10001', '10001', '10001', '01110'],
  V: ['10001', '10001', '10001', '10001', '10001', '01010', '00100'],
  W: ['10001', '10001', '10001', '10101', '10101', '10101', '01010'],
  X: ['10001', '10001', '01010', '00100', '01010', '10001', '10001'],
  Y: ['10001', '10001', '01010', '00100', '00100', '00100', '00100'],
  Z: ['11111', '00001', '00010', '00100', '01000', '10000', '11111'],
  0: ['01110', '10001', '10011', '10101', '11001', '10001', '01110'],
  1: ['00100', '01100', '00100', '00100', '00100', '00100', '01110'],
  2: ['01110', '10001', '00001', '00010', '00100', '01000', '11111'],
  3: ['11111', '00010', '00100', '00010', '00001', '10001', '01110'],
  4: ['00010', '00110', '01010', '10010', '11111', '00010', '00010'],
  5: ['11111', '10000', '11110', '00001', '00001', '10001', '01110'],
  6: ['00110', '01000', '10000', '11110', '10001', '10001', '01110'],
  7: ['11111', '00001', '00010', '00100', '01000', '01000', '01000'],
  8: ['01110', '10001', '10001', '01110', '10001', '10001', '01110'],
  9: ['01110', '10001', '10001', '01111', '00001', '00010', '01100'],
  ' ': ['00000', '00000', '00000', '00000', '00000', '00000', '00000'],
};

interface Line { text: string; flipped: boolean }
interface Fixture { file: string; lines: Line[] }

const SCALE = 4;
const MARGIN = 24;
const LINE_GAP = 28;

/** A grey image (0 = black, 255 = white) of one line of text. */
function renderLine(text: string): { w: number; h: number; px: Uint8Array } {
  const cw = 6 * SCALE;
  const w = text.length * cw - SCALE;
  const h = 7 * SCALE;
  const px = new Uint8Array(w * h).fill(255);
  [...text].forEach((ch, k) => {
    const glyph = FONT[ch];
    if (!glyph) throw new Error(`no glyph for '${ch}'`);
    for (let r = 0; r < 7; r++) {
      for (let c = 0; c < 5; c++) {
        if (glyph[r]![c] !== '1') continue;
        for (let y = 0; y < SCALE; y++) for (let x = 0; x < SCALE; x++) px[(r * SCALE + y) * w + k * cw + c * SCALE + x] = 20;
      }
    }
  });
  return { w, h, px };
}

function rotate180(img: { w: number; h: number; px: Uint8Array }): { w: number; h: number; px: Uint8Array } {
  return { ...img, px: img.px.slice().reverse() };
}

/** 3×3 box blur: the edges of printed text are not hard pixel steps. */
function soften(px: Uint8Array, w: number, h: number): Uint8Array {
  const out = new Uint8Array(px.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sum = 0;
      let n = 0;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          sum += px[yy * w + xx]!;
          n++;
        }
      }
      out[y * w + x] = Math.round(sum / n);
    }
  }
  return out;
}

function render(fixture: Fixture): Buffer {
  const lines = fixture.lines.map((l) => (l.flipped ? rotate180(renderLine(l.text)) : renderLine(l.text)));
  const w = Math.max(...lines.map((l) => l.w)) + 2 * MARGIN;
  const h = lines.reduce((s, l) => s + l.h, 0) + LINE_GAP * (lines.length - 1) + 2 * MARGIN;
  let grey: Uint8Array = new Uint8Array(w * h).fill(255);
  let top = MARGIN;
  for (const l of lines) {
    for (let y = 0; y < l.h; y++) grey.set(l.px.subarray(y * l.w, (y + 1) * l.w), (top + y) * w + MARGIN);
    top += l.h + LINE_GAP;
  }
  grey = soften(grey, w, h);
  const png = new PNG({ width: w, height: h, colorType: 0, inputColorType: 0, bitDepth: 8 });
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba[i * 4] = rgba[i * 4 + 1] = rgba[i * 4 + 2] = grey[i]!;
    rgba[i * 4 + 3] = 255;
  }
  png.data = rgba;
  return PNG.sync.write(png, { colorType: 0 });
}

export const FIXTURES: Fixture[] = [
  { file: 'hello.png', lines: [{ text: 'HELLO WORLD', flipped: false }] },
  { file: 'upside-down.png', lines: [{ text: 'STUBHOST 42', flipped: true }] },
  { file: 'two-lines.png', lines: [{ text: 'OCR PIPELINE', flipped: false }, { text: 'TURN ME', flipped: true }] },
];

fs.mkdirSync(OUT, { recursive: true });
for (const f of FIXTURES) {
  const bytes = render(f);
  fs.writeFileSync(path.join(OUT, f.file), bytes);
  process.stdout.write(`${f.file}: ${bytes.length} bytes\n`);
}
