import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModelName, resolveModelDir, scanModelDir, scanRepository, versionsToServe } from '../src/repository/scan.js';
import { StubhostError } from '../src/errors.js';
import type { ModelConfig } from '../src/config/schema.js';

let base: string;
let root: string;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'stubhost-scan-'));
  root = join(base, 'models');
  mkdirSync(root);
});
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

function files(dir: string, map: Record<string, string>): void {
  for (const [rel, content] of Object.entries(map)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    if (rel.endsWith('/')) mkdirSync(join(dir, rel), { recursive: true });
    else writeFileSync(join(dir, rel), content);
  }
}

function thrown(fn: () => unknown, code: string): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StubhostError);
    expect((err as StubhostError).code).toBe(code);
    return (err as StubhostError).message;
  }
  throw new Error('expected an error');
}

describe('scanRepository', () => {
  it('lists model folders with their versions, skipping what is not a model', async () => {
    const repo = join(base, 'repo1');
    files(repo, {
      'add_sub/config.pbtxt': 'backend: "typescript"',
      'add_sub/1/model.ts': 'a',
      'add_sub/2/model.ts': 'b',
      'add_sub/10/model.ts': 'c',
      'add_sub/notes/readme.md': '',
      'add_sub/3.txt': '',
      'json_only/config.json': '{}',
      'versions_only/1/model.onnx': '',
      'empty/': '',
      'not_a_model/data/x': '',
      '.hidden/config.pbtxt': '',
      'stray.txt': '',
    });
    const entries = await scanRepository(repo);
    expect(entries.map((e) => [e.name, e.versions, e.configFile])).toEqual([
      ['add_sub', [1, 2, 10], 'config.pbtxt'],
      ['json_only', [], 'config.json'],
      ['versions_only', [1], undefined],
    ]);
    expect(entries[0]!.path).toBe(join(repo, 'add_sub'));
    expect(entries[0]!.fingerprint).toMatch(/^[0-9a-f]{32}$/);
  });

  it('config.pbtxt is named when both config files exist', async () => {
    const repo = join(base, 'repo2');
    files(repo, { 'm/config.pbtxt': '', 'm/config.json': '{}' });
    expect((await scanRepository(repo))[0]!.configFile).toBe('config.pbtxt');
  });

  it('the fingerprint changes when a config or version file changes, and only then', async () => {
    const repo = join(base, 'repo3');
    files(repo, { 'm/config.pbtxt': 'a', 'm/1/model.ts': 'x', 'm/1/node_modules/dep/index.js': '1' });
    const fp = async () => (await scanRepository(repo))[0]!.fingerprint;
    const first = await fp();
    expect(await fp()).toBe(first);

    writeFileSync(join(repo, 'm/1/node_modules/dep/index.js'), 'installed state, not model content');
    expect(await fp()).toBe(first);

    writeFileSync(join(repo, 'm/1/model.ts'), 'xy');
    const second = await fp();
    expect(second).not.toBe(first);

    const later = new Date(Date.now() + 60_000);
    utimesSync(join(repo, 'm/config.pbtxt'), later, later);
    const third = await fp();
    expect(third).not.toBe(second);

    mkdirSync(join(repo, 'm/2'));
    const fourth = await fp();
    expect(fourth).not.toBe(third);

    writeFileSync(join(repo, 'm/config.json'), '{}');
    expect(await fp()).not.toBe(fourth);
  });

  it('follows symlinked models inside the root, skips those that lead outside', async () => {
    const repo = join(base, 'repo4');
    files(repo, { 'real/config.pbtxt': '' });
    files(base, { 'outside/config.pbtxt': '' });
    symlinkSync(join(repo, 'real'), join(repo, 'alias'));
    symlinkSync(join(base, 'outside'), join(repo, 'escape'));
    expect((await scanRepository(repo)).map((e) => e.name)).toEqual(['alias', 'real']);
  });

  it('a missing repository is a clear error', async () => {
    await expect(scanRepository(join(base, 'nope'))).rejects.toMatchObject({
      code: 'STUBHOST_NOT_FOUND',
      message: expect.stringMatching(/^model repository .*nope cannot be read/),
    });
  });

  it('scanModelDir: undefined for a folder that is not a model', async () => {
    files(base, { 'plain/x.txt': '' });
    expect(await scanModelDir('plain', join(base, 'plain'))).toBeUndefined();
    expect(await scanModelDir('gone', join(base, 'gone'))).toBeUndefined();
  });
});

describe('versionsToServe', () => {
  const cfg = (version_policy: ModelConfig['version_policy']) => ({ name: 'm', version_policy });

  it('latest N: the N highest, ascending', () => {
    expect(versionsToServe(cfg({ latest: { num_versions: 1 } }), [3, 1, 10, 2])).toEqual([10]);
    expect(versionsToServe(cfg({ latest: { num_versions: 2 } }), [3, 1, 10, 2])).toEqual([3, 10]);
    expect(versionsToServe(cfg({ latest: { num_versions: 9 } }), [2, 1])).toEqual([1, 2]);
  });

  it('all', () => {
    expect(versionsToServe(cfg({ all: {} }), [2, 1, 2])).toEqual([1, 2]);
  });

  it('specific: exactly those, each must exist', () => {
    expect(versionsToServe(cfg({ specific: { versions: [3, 1] } }), [1, 2, 3])).toEqual([1, 3]);
    expect(thrown(() => versionsToServe(cfg({ specific: { versions: [1, 4] } }), [1, 2, 3]), 'STUBHOST_CONFIG')).toBe(
      'model m: version_policy.specific.versions: version 4 has no folder in the model; found versions 1, 2, 3',
    );
    expect(thrown(() => versionsToServe(cfg({ specific: { versions: [4, 5] } }), []), 'STUBHOST_CONFIG')).toBe(
      'model m: version_policy.specific.versions: versions 4, 5 have no folder in the model; found versions none',
    );
  });

  it('nothing to serve is an error naming the model', () => {
    expect(thrown(() => versionsToServe(cfg({ latest: { num_versions: 1 } }), []), 'STUBHOST_CONFIG')).toBe(
      'model m: no version to serve; add a version folder such as m/1 (found versions: none)',
    );
  });
});

describe('checkModelName', () => {
  it('accepts plain names', () => {
    for (const n of ['add_sub', 'resnet-50', 'a.b', 'x..y', 'Model 1', 'é']) expect(() => checkModelName(n)).not.toThrow();
  });

  const bad: [string, RegExp][] = [
    ['', /^model name "" is empty; use a plain folder name of the model repository$/],
    ['.', /"\." is a relative path, not a name/],
    ['..', /"\.\." is a relative path, not a name/],
    ['.hidden', /starts with "\." \(hidden folders are not models\)/],
    ['../etc', /starts with "\."/],
    ['a/b', /contains a path separator/],
    ['/etc/passwd', /contains a path separator/],
    ['a\\b', /contains a path separator/],
    ['a\0b', /contains a NUL character/],
    ['x'.repeat(256), /is longer than 255 bytes/],
  ];
  for (const [name, re] of bad) {
    it(`refuses ${JSON.stringify(name.slice(0, 20))}`, () => expect(thrown(() => checkModelName(name), 'STUBHOST_INVALID_ARG')).toMatch(re));
  }
});

describe('resolveModelDir', () => {
  it('resolves inside the root, existing or not', () => {
    files(root, { 'add_sub/config.pbtxt': '' });
    expect(resolveModelDir(root, 'add_sub')).toBe(join(root, 'add_sub'));
    expect(resolveModelDir(root, 'not_yet')).toBe(join(root, 'not_yet'));
  });

  it('refuses traversal by name', () => {
    for (const name of ['..', '../x', 'a/../../x', '/abs', '.']) {
      expect(thrown(() => resolveModelDir(root, name), 'STUBHOST_INVALID_ARG')).toMatch(/^model name /);
    }
  });

  it('refuses a symlink that leads outside the root (realpath check)', () => {
    files(base, { 'secret/config.pbtxt': '' });
    symlinkSync(join(base, 'secret'), join(root, 'link_out'));
    expect(thrown(() => resolveModelDir(root, 'link_out'), 'STUBHOST_INVALID_ARG')).toBe(
      `model "link_out" is a link that leads outside the model repository (to ${join(base, 'secret')})`,
    );
    symlinkSync(join(root, 'add_sub'), join(root, 'link_in'));
    expect(resolveModelDir(root, 'link_in')).toBe(join(root, 'link_in'));
  });

  it('works when the root itself is reached through a symlink', () => {
    symlinkSync(root, join(base, 'root_link'));
    expect(resolveModelDir(join(base, 'root_link'), 'add_sub')).toBe(join(base, 'root_link', 'add_sub'));
  });
});
