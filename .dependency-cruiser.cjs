/**
 * The layering of stubhost, checked by `npm run lint:deps` (CI runs it after the type check).
 * docs/ARCHITECTURE.md ("Folders and what each may import") describes the same table.
 *
 * Each layer lists what it may import besides itself, node built-ins and npm packages; an
 * import of any other module of ours is an error. Type-only imports count: a type that runs
 * back up is a cycle all the same. Lower layers come first.
 */

/** The bottom that host and stub share. */
const SHARED = ['src/errors.ts', 'src/core/'];

/** Host layers, bottom to top. */
const INSTANCE = [...SHARED, 'src/ipc/', 'src/log/', 'src/execution/'];
const SCHEDULER = [...SHARED, 'src/log/', 'src/config/', 'src/execution/'];
const MODEL = [...new Set([...INSTANCE, ...SCHEDULER, 'src/metrics/', 'src/instance/', 'src/scheduler/', 'src/cache/'])];
const REPOSITORY = [...MODEL, 'src/model/'];
/** The inference layer: resolves a request's version once (over the repository's lookup, not the repository). */
const INFERENCE = [...REPOSITORY];
const SERVER_CORE = [...REPOSITORY, 'src/repository/', 'src/inference/'];
/**
 * The front-ends know the host through InferenceService (src/core/service.ts); of the inference
 * layer they use only its pure parts (classification checks, the one-response rule).
 */
const FRONT_END = [
  ...SHARED, 'src/log/', 'src/server/shm-registry.ts', 'src/server/restricted-features.ts', 'src/server/header-forward.ts',
  'src/server/request-options.ts', 'src/inference/classification.ts', 'src/inference/one-response.ts',
];

/** [layer, what it may import]. A layer ending in / is a folder, else one file. */
const LAYERS = [
  ['src/errors.ts', []],
  ['src/core/', ['src/errors.ts']],
  ['src/ipc/', SHARED],
  ['src/log/', SHARED],
  ['src/config/', SHARED],
  ['src/execution/', SHARED],
  // The response cache's store and its flag: data structures at the bottom (metrics read their counts).
  ['src/cache/', SHARED],
  ['src/metrics/', [...SHARED, 'src/cache/response-cache.ts']],
  // A cache in front of a model's infer: records hits in the model's statistics.
  ['src/cache/cached-infer.ts', [...SHARED, 'src/log/', 'src/config/', 'src/metrics/', 'src/cache/']],
  ['src/instance/', INSTANCE],
  // The parts of a stub handle, below StubProcess: none of them reaches back up to it or the launchers.
  ['src/instance/wire-outcome.ts', INSTANCE],
  ['src/instance/health-watch.ts', []],
  ['src/instance/stub-requests.ts', [...INSTANCE, 'src/instance/wire-outcome.ts']],
  ['src/instance/bls-relay.ts', [...INSTANCE, 'src/instance/wire-outcome.ts']],
  ['src/scheduler/', SCHEDULER],
  ['src/model/', MODEL],
  ['src/repository/', REPOSITORY],
  ['src/inference/', INFERENCE],
  // Pure parts of the inference layer, which the front-ends use too.
  ['src/inference/classification.ts', SHARED],
  ['src/inference/one-response.ts', SHARED],
  ['src/server/client-shm-file.ts', [...SHARED, 'src/ipc/']],
  ['src/server/shm-registry.ts', [...SHARED, 'src/ipc/', 'src/server/client-shm-file.ts']],
  ['src/server/restricted-features.ts', SHARED],
  // The protocol adapter: request options and load/unload parameters, for every front-end.
  ['src/server/request-options.ts', SHARED],
  ['src/server/header-forward.ts', SHARED],
  ['src/server/fd-limit.ts', [...SHARED, 'src/ipc/']],
  ['src/server/http/', FRONT_END],
  ['src/server/grpc/', FRONT_END],
  ['src/server/core.ts', SERVER_CORE],
  ['src/server/start.ts', [...SERVER_CORE, 'src/server/core.ts', 'src/server/shm-registry.ts', 'src/server/restricted-features.ts', 'src/server/fd-limit.ts', 'src/server/header-forward.ts', 'src/server/http/', 'src/server/grpc/']],
  // The authoring commands (init, types): read configs and ONNX graphs, never start a server.
  ['src/tools/', SHARED],
  ['src/authoring/', [...SHARED, 'src/config/', 'src/repository/scan.ts', 'src/tools/', 'stub/backends/']],
  // stubhost dev: watches the repository, type-checks (a worker thread) and reloads saved models.
  ['src/dev/', [...SHARED, 'src/log/', 'src/repository/', 'src/authoring/', 'src/tools/']],
  ['src/cli.ts', ['src/log/', 'src/errors.ts', 'src/server/start.ts', 'src/server/shm-registry.ts', 'src/server/restricted-features.ts', 'src/server/header-forward.ts', 'src/tools/', 'src/authoring/', 'src/dev/', 'src/cache/cache-config.ts']],
  // The stub: the model API knows nothing of the stub or the wire; backends are models.
  ['stub/api/', SHARED],
  ['stub/backends/', [...SHARED, 'stub/api/']],
  // The rest of stub/ (main, the message loop, the loaders): the shared bottom and the wire.
  ['stub/', [...SHARED, 'src/ipc/', 'stub/api/', 'stub/backends/']],
  // The parts of the stub's message loop (stub-loop.ts), below it: none of them reaches back up.
  ['stub/execute-context.ts', [...SHARED, 'src/ipc/']],
  ['stub/exec-queue.ts', [...SHARED, 'src/ipc/']],
  ['stub/console-capture.ts', [...SHARED, 'stub/api/']],
  ['stub/model-errors.ts', [...SHARED, 'stub/api/', 'stub/error-location.ts']],
  ['stub/stub-wire.ts', [...SHARED, 'src/ipc/', 'stub/api/']],
  ['stub/model-loader.ts', [...SHARED, 'src/ipc/', 'stub/api/', 'stub/backends/', 'stub/typescript-loader.ts']],
  ['stub/bls-client.ts', [...SHARED, 'src/ipc/', 'stub/api/', 'stub/execute-context.ts', 'stub/model-errors.ts', 'stub/stub-wire.ts']],
];

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const prefix = (p) => `^${escape(p)}${p.endsWith('/') ? '' : '$'}`;
/** The deeper layers inside a folder layer (stub/api/ inside stub/): they have rules of their own. */
const nestedIn = (layer) => LAYERS.map(([l]) => l).filter((l) => l !== layer && layer.endsWith('/') && l.startsWith(layer));

const layerRules = LAYERS.map(([layer, allowed]) => ({
  name: `layer:${layer}`,
  comment: `${layer} may import only ${allowed.length ? allowed.join(', ') : 'nothing of ours'} (see docs/ARCHITECTURE.md)`,
  severity: 'error',
  from: { path: prefix(layer), pathNot: nestedIn(layer).map(prefix) },
  to: { path: '^(src|stub|bin)/', pathNot: [...allowed, layer].map(prefix) },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'layer:unknown',
      comment: 'every module of src/ and stub/ belongs to a layer: add a new folder to LAYERS here and to docs/ARCHITECTURE.md',
      severity: 'error',
      from: { path: '^(src|stub)/', pathNot: LAYERS.map(([l]) => prefix(l)) },
      to: {},
    },
    {
      name: 'no-circular',
      comment: 'no import cycles, not even of types',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-dev-dep',
      comment: 'the host and the stub run with the package\'s dependencies only; devDependencies are for tests and scripts',
      severity: 'error',
      from: { path: '^(src|stub|bin)/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // bin/stubhost.js imports the build (dist/), which is checked as its sources.
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
