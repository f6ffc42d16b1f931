// Loaded into each stub by the dev benchmark (STUBHOST_STUB_NODE_ARGS="--require <this file>"):
// appends to $STUBHOST_BENCH_MARKS, on the wall clock, when the stub process started, when node
// had booted (this file runs), and when its model.ts began and finished loading (tsx compiles it
// then; a CommonJS model.ts goes through Module._load). Plain CommonJS: it runs before anything.
'use strict';
const fs = require('node:fs');
const Module = require('node:module');
const { isMainThread } = require('node:worker_threads');

const file = process.env.STUBHOST_BENCH_MARKS;
if (file && isMainThread) {
  const mark = (what, at = performance.timeOrigin + performance.now()) => fs.appendFileSync(file, `${JSON.stringify({ pid: process.pid, what, at })}\n`);
  mark('start', performance.timeOrigin);
  mark('booted');
  const load = Module._load;
  Module._load = function (request) {
    if (!/(^|[/\\])model\.ts$/.test(request)) return load.apply(this, arguments);
    mark('importStart');
    try {
      return load.apply(this, arguments);
    } finally {
      mark('importEnd');
    }
  };
}
