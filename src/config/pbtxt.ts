/**
 * A parser for protobuf text format, as Triton's `config.pbtxt` uses it.
 *
 * No maintained text-format parser is installed (protobufjs reads `.proto` files and binary /
 * JSON messages, not text format), so this is a small hand-written one. It knows nothing of
 * Triton: what is repeated and what is a map comes from a `MessageShape` the caller passes
 * (`MODEL_CONFIG_SHAPE` in schema.ts, derived from the zod schema so the two never drift).
 *
 * Grammar handled: fields `name: value`, messages `name { ... }` / `name < ... >` with an
 * optional `:`, lists `name: [a, b]` and `name [ {..}, {..} ]`, strings in '' or "" with C
 * escapes (adjacent strings concatenate), integers (decimal, hex, octal, negative), floats
 * (`1.5`, `.5`, `1e3`, `2.0f`, `inf`, `nan`), enums as bare identifiers, booleans, `#` comments,
 * and `,` or `;` after any field.
 */
import { StubhostError } from '../errors.js';

/** What the parser needs to know about one message type. Unknown fields are parsed generically. */
export interface MessageShape {
  readonly [field: string]: FieldShape;
}

export interface FieldShape {
  /** Always an array, even when given once (protobuf `repeated`). */
  readonly repeated?: boolean;
  /** A protobuf `map<K, V>`: written as repeated `{ key: .. value: .. }` entries. */
  readonly map?: boolean;
  /** The message type of the field, or of a map's values. */
  readonly message?: MessageShape;
}

export interface PbtxtOptions {
  /** Named in error messages (`models/a/config.pbtxt:3:7: ...`). */
  file?: string;
  /** Field knowledge of the top-level message. */
  shape?: MessageShape;
  /**
   * Maps (per `shape`) become `{ [key]: value }` objects, as protobuf's JSON mapping writes them,
   * instead of arrays of `{ key, value }` entries.
   */
  mapsAsObjects?: boolean;
}

export type PbtxtValue = string | number | boolean | PbtxtObject | PbtxtValue[];
export interface PbtxtObject {
  [field: string]: PbtxtValue;
}

type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'eof';

interface Token {
  kind: TokenKind;
  /** ident/punct: the text; number: the source text; string: the decoded value. */
  text: string;
  line: number;
  col: number;
}

const PUNCT = new Set(['{', '}', '<', '>', '[', ']', ':', ',', ';', '-']);

class Lexer {
  private pos = 0;
  private line = 1;
  private col = 1;
  constructor(private readonly src: string, private readonly fail: (line: number, col: number, msg: string) => never) {}

  next(): Token {
    this.skipSpaceAndComments();
    const line = this.line, col = this.col;
    if (this.pos >= this.src.length) return { kind: 'eof', text: '', line, col };
    const c = this.src[this.pos]!;
    if (c === '"' || c === "'") return { kind: 'string', text: this.readString(c, line, col), line, col };
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos))!;
      this.advance(m[0].length);
      return { kind: 'ident', text: m[0], line, col };
    }
    if (/[0-9.]/.test(c)) {
      const m = /^(0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?)/.exec(this.src.slice(this.pos));
      if (!m) this.fail(line, col, `unexpected character ${JSON.stringify(c)}`);
      // A number running straight into letters (`12abc`) is a typo, not two tokens.
      const after = this.src[this.pos + m[0].length];
      if (after !== undefined && /[A-Za-z_0-9]/.test(after)) {
        this.fail(line, col, `malformed number ${JSON.stringify(m[0] + after)}`);
      }
      this.advance(m[0].length);
      return { kind: 'number', text: m[0], line, col };
    }
    if (PUNCT.has(c)) {
      this.advance(1);
      return { kind: 'punct', text: c, line, col };
    }
    this.fail(line, col, `unexpected character ${JSON.stringify(c)}`);
  }

  private advance(n: number): void {
    for (let i = 0; i < n; i++) {
      if (this.src[this.pos] === '\n') {
        this.line++;
        this.col = 1;
      } else {
        this.col++;
      }
      this.pos++;
    }
  }

  private skipSpaceAndComments(): void {
    while (this.pos < this.src.length) {
      const c = this.src[this.pos]!;
      if (c === '#') {
        while (this.pos < this.src.length && this.src[this.pos] !== '\n') this.advance(1);
      } else if (/\s/.test(c)) {
        this.advance(1);
      } else {
        return;
      }
    }
  }

  /** Decodes escapes into bytes, then UTF-8, so `\303\251` and `é` read the same. */
  private readString(quote: string, line: number, col: number): string {
    this.advance(1);
    const bytes: number[] = [];
    const pushText = (s: string) => bytes.push(...Buffer.from(s, 'utf8'));
    for (;;) {
      if (this.pos >= this.src.length) this.fail(line, col, 'string is not closed');
      const c = this.src[this.pos]!;
      if (c === '\n') this.fail(line, col, 'string is not closed before the end of the line');
      if (c === quote) {
        this.advance(1);
        return Buffer.from(bytes).toString('utf8');
      }
      if (c !== '\\') {
        const cp = this.src.codePointAt(this.pos)!;
        const ch = String.fromCodePoint(cp);
        pushText(ch);
        this.advance(ch.length);
        continue;
      }
      const escLine = this.line, escCol = this.col;
      const e = this.src[this.pos + 1];
      if (e === undefined) this.fail(escLine, escCol, 'string is not closed');
      const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, "'": 39, '"': 34, '?': 63 };
      if (e in simple) {
        bytes.push(simple[e]!);
        this.advance(2);
      } else if (/[0-7]/.test(e)) {
        const m = /^[0-7]{1,3}/.exec(this.src.slice(this.pos + 1))!;
        const v = parseInt(m[0], 8);
        if (v > 255) this.fail(escLine, escCol, `octal escape \\${m[0]} is larger than a byte`);
        bytes.push(v);
        this.advance(1 + m[0].length);
      } else if (e === 'x' || e === 'X') {
        const m = /^[0-9a-fA-F]{1,2}/.exec(this.src.slice(this.pos + 2));
        if (!m) this.fail(escLine, escCol, '\\x must be followed by hex digits');
        bytes.push(parseInt(m[0], 16));
        this.advance(2 + m[0].length);
      } else if (e === 'u' || e === 'U') {
        const n = e === 'u' ? 4 : 8;
        const hex = this.src.slice(this.pos + 2, this.pos + 2 + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) this.fail(escLine, escCol, `\\${e} must be followed by ${n} hex digits`);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) this.fail(escLine, escCol, `\\${e}${hex} is not a Unicode code point`);
        pushText(String.fromCodePoint(cp));
        this.advance(2 + n);
      } else {
        this.fail(escLine, escCol, `unknown escape \\${e}`);
      }
    }
  }
}

class Parser {
  private tok: Token;
  private readonly lexer: Lexer;

  constructor(src: string, private readonly opts: PbtxtOptions) {
    this.lexer = new Lexer(src, (l, c, m) => this.fail(l, c, m));
    this.tok = this.lexer.next();
  }

  fail(line: number, col: number, msg: string): never {
    const where = this.opts.file ? `${this.opts.file}:${line}:${col}` : `${line}:${col}`;
    throw new StubhostError('STUBHOST_CONFIG', `${where}: ${msg}`);
  }

  private failAt(t: Token, msg: string): never {
    return this.fail(t.line, t.col, msg);
  }

  private shift(): Token {
    const t = this.tok;
    this.tok = this.lexer.next();
    return t;
  }

  private isPunct(p: string): boolean {
    return this.tok.kind === 'punct' && this.tok.text === p;
  }

  private expectPunct(p: string, what: string): void {
    if (!this.isPunct(p)) this.failAt(this.tok, `expected '${p}' ${what}, found ${describe(this.tok)}`);
    this.shift();
  }

  parseTop(): PbtxtObject {
    const obj = this.parseFields(undefined, this.opts.shape);
    if (this.tok.kind !== 'eof') this.failAt(this.tok, `expected a field name, found ${describe(this.tok)}`);
    return obj;
  }

  /** Fields until `close` (or end of input at the top level). */
  private parseFields(close: string | undefined, shape: MessageShape | undefined): PbtxtObject {
    const obj: PbtxtObject = {};
    const seen = new Map<string, Token>();
    // Unknown fields already turned into arrays, so a later value appends instead of nesting.
    const seenAsList = new Set<string>();
    for (;;) {
      if (close === undefined ? this.tok.kind === 'eof' : this.isPunct(close)) return obj;
      if (this.tok.kind === 'eof') this.failAt(this.tok, `expected '${close}' to close the message, found the end of the file`);
      if (this.tok.kind !== 'ident') this.failAt(this.tok, `expected a field name, found ${describe(this.tok)}`);
      const nameTok = this.shift();
      const name = nameTok.text;
      const field = shape && Object.hasOwn(shape, name) ? shape[name] : undefined;
      const { values, list } = this.parseFieldValues(name, field);
      const many = field ? field.repeated || field.map : undefined;
      if (field?.map && this.opts.mapsAsObjects) {
        const target = (obj[name] ??= {}) as PbtxtObject;
        for (const v of values) this.addMapEntry(target, v, name, field);
      } else if (many === true) {
        ((obj[name] ??= []) as PbtxtValue[]).push(...values.map((v) => v.value));
      } else if (field !== undefined) {
        // Known singular field: protobuf rejects a second value, so does Triton.
        if (list) this.failAt(nameTok, `field "${name}" takes one value, not a list`);
        const prev = seen.get(name);
        if (prev) this.failAt(nameTok, `field "${name}" is given twice (first at ${prev.line}:${prev.col}); it is not a repeated field`);
        obj[name] = values[0]!.value;
      } else {
        // Unknown field: keep everything, let the schema name it and list the allowed ones.
        const prev = obj[name];
        if (prev === undefined && !list) obj[name] = values[0]!.value;
        else obj[name] = [...(prev === undefined ? [] : Array.isArray(prev) && seenAsList.has(name) ? prev : [prev]), ...values.map((v) => v.value)];
        if (list || prev !== undefined) seenAsList.add(name);
      }
      seen.set(name, nameTok);
      if (this.isPunct(',') || this.isPunct(';')) this.shift();
    }
  }

  private addMapEntry(target: PbtxtObject, entry: ParsedValue, name: string, field: FieldShape): void {
    const v = entry.value;
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.failAt(entry.at, `map field "${name}" takes entries { key: ... value: ... }, found ${JSON.stringify(v)}`);
    }
    for (const k of Object.keys(v)) {
      if (k !== 'key' && k !== 'value') this.failAt(entry.at, `map field "${name}" entry has field "${k}"; an entry has only "key" and "value"`);
    }
    const key = v.key;
    if (key !== undefined && typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'boolean') {
      this.failAt(entry.at, `map field "${name}" key must be a string or number`);
    }
    // Protobuf: a missing key or value is the type's default; a repeated key keeps the last entry.
    target[String(key ?? '')] = v.value ?? (field.message ? {} : '');
  }

  /** The value(s) after a field name: one value, or the elements of a `[...]` list. */
  private parseFieldValues(name: string, field: FieldShape | undefined): { values: ParsedValue[]; list: boolean } {
    const colon = this.isPunct(':');
    if (colon) this.shift();
    const at = this.tok;
    if (this.isPunct('[')) {
      this.shift();
      const out: ParsedValue[] = [];
      while (!this.isPunct(']')) {
        const elemAt = this.tok;
        if (this.isPunct('{') || this.isPunct('<')) {
          out.push({ value: this.parseMessage(field?.message), at: elemAt });
        } else {
          if (!colon) this.failAt(elemAt, `expected ':' after field "${name}" before a list of values`);
          out.push({ value: this.parseScalar(name), at: elemAt });
        }
        if (this.isPunct(',')) this.shift();
        else if (!this.isPunct(']')) this.failAt(this.tok, `expected ',' or ']' in the list of "${name}", found ${describe(this.tok)}`);
      }
      this.shift();
      return { values: out, list: true };
    }
    if (this.isPunct('{') || this.isPunct('<')) return { values: [{ value: this.parseMessage(field?.message), at }], list: false };
    if (!colon) this.failAt(this.tok, `expected ':' or '{' after field "${name}", found ${describe(this.tok)}`);
    return { values: [{ value: this.parseScalar(name), at }], list: false };
  }

  private parseMessage(shape: MessageShape | undefined): PbtxtObject {
    const open = this.shift().text;
    const close = open === '{' ? '}' : '>';
    const obj = this.parseFields(close, shape);
    this.expectPunct(close, `to close the message opened with '${open}'`);
    return obj;
  }

  private parseScalar(name: string): string | number | boolean {
    const t = this.tok;
    if (t.kind === 'string') {
      let s = '';
      while (this.tok.kind === 'string') s += this.shift().text;
      return s;
    }
    let negative = false;
    if (this.isPunct('-')) {
      negative = true;
      this.shift();
    }
    const v = this.tok;
    if (v.kind === 'number') {
      this.shift();
      return parseNumber(v.text, negative, () => this.failAt(t, `number ${negative ? '-' : ''}${v.text} is not valid`));
    }
    if (v.kind === 'ident') {
      this.shift();
      const lower = v.text.toLowerCase();
      if (lower === 'inf' || lower === 'infinity') return negative ? -Infinity : Infinity;
      if (lower === 'nan') return NaN;
      if (negative) this.failAt(t, `'-' must be followed by a number, found ${v.text}`);
      if (v.text === 'true' || v.text === 'True' || v.text === 't') return true;
      if (v.text === 'false' || v.text === 'False' || v.text === 'f') return false;
      return v.text; // an enum value such as TYPE_FP32
    }
    this.failAt(v, `expected a value for field "${name}", found ${describe(v)}`);
  }
}

interface ParsedValue {
  value: PbtxtValue;
  at: Token;
}

function describe(t: Token): string {
  if (t.kind === 'eof') return 'the end of the file';
  if (t.kind === 'string') return `string ${JSON.stringify(t.text)}`;
  return `'${t.text}'`;
}

/**
 * Integers beyond 2^53 stay strings (protobuf's JSON mapping writes int64 that way too), so no
 * digit is silently lost; the schema decides whether such a value is acceptable.
 */
function parseNumber(text: string, negative: boolean, bad: () => never): number | string {
  const sign = negative ? -1 : 1;
  if (/^0[xX]/.test(text)) {
    const big = BigInt(text) * BigInt(sign);
    return Number.isSafeInteger(Number(big)) ? Number(big) : big.toString();
  }
  if (/^0[0-7]+$/.test(text)) return sign * parseInt(text, 8);
  if (/^0[0-9]+$/.test(text)) bad();
  if (/^[0-9]+$/.test(text)) {
    const big = BigInt(text) * BigInt(sign);
    return Number.isSafeInteger(Number(big)) ? Number(big) : big.toString();
  }
  const n = Number(text.replace(/[fF]$/, ''));
  if (Number.isNaN(n)) bad();
  return sign * n;
}

/**
 * Parses protobuf text into a plain object. Fields the shape marks repeated are always arrays;
 * other fields given more than once become arrays only when the shape does not know them.
 * Throws StubhostError('STUBHOST_CONFIG') with `file:line:column` on malformed input.
 */
export function parsePbtxt(text: string, opts: PbtxtOptions = {}): PbtxtObject {
  return new Parser(text, opts).parseTop();
}
