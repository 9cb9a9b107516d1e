/**
 * Import rules for src/ (run by `npm run check:deps`, part of `npm test`). The layers, each
 * importing only those below it:
 *
 *   core → storage, crypto → identity, access → objects, vaults → audit, events, jobs,
 *   compliance → http, rpc → src/index.ts (the Worker's entry)
 *
 * http (Hono apps) and rpc (the service-binding entrypoint) are the two transports: one layer,
 * neither imports the other.
 *
 * Within a layer, folders may import one way only (crypto may use storage, access may use
 * identity, jobs may use audit and events, compliance may use audit), so folders form no cycle
 * either. The Worker and the HSM bridge share only their wire protocol module, bridge-protocol/,
 * which imports nothing of either.
 */
const LAYERS = [
  ['core'],
  ['storage', 'crypto'],
  ['identity', 'access'],
  ['objects', 'vaults'],
  ['audit', 'events', 'jobs', 'compliance'],
  ['http', 'rpc'],
];
// Imports allowed between folders of one layer: [from, to].
const SAME_LAYER = [
  ['crypto', 'storage'],
  ['access', 'identity'],
  ['vaults', 'objects'],
  ['jobs', 'audit'],
  ['jobs', 'events'],
  ['jobs', 'compliance'],
  ['compliance', 'audit'],
  ['events', 'audit'],
];

const layerOf = Object.fromEntries(LAYERS.flatMap((folders, i) => folders.map((f) => [f, i])));
const folders = Object.keys(layerOf);
const forbidden = [
  {
    name: 'no-circular',
    severity: 'error',
    comment: 'Files import each other: split out what both need, or invert the dependency.',
    from: {},
    to: { circular: true },
  },
  {
    name: 'no-entry-imports',
    severity: 'error',
    comment: 'src/index.ts is the Worker entry; nothing imports it.',
    from: { path: '^src/' },
    to: { path: '^src/index\\.ts$' },
  },
  {
    name: 'core-imports-nothing',
    severity: 'error',
    comment: 'src/core imports nothing of the project.',
    from: { path: '^src/core/' },
    to: { path: '^(src/(?!core/)|hsm-bridge/|bridge-protocol/|scripts/|test/|bench/)' },
  },
  {
    name: 'worker-not-into-bridge-source',
    severity: 'error',
    comment: 'The Worker shares only the wire protocol with the bridge, never its source.',
    from: { path: '^src/' },
    to: { path: '^hsm-bridge/' },
  },
  {
    name: 'bridge-not-into-worker-source',
    severity: 'error',
    comment: 'The bridge shares only the wire protocol with the Worker, never its source.',
    from: { path: '^hsm-bridge/src/' },
    to: { path: '^src/' },
  },
  {
    name: 'protocol-imports-nothing-of-the-project',
    severity: 'error',
    comment: 'bridge-protocol/ runs in both programs: it imports only packages, never src/, the bridge or tooling.',
    from: { path: '^bridge-protocol/' },
    to: { path: '^(src|hsm-bridge|scripts|test|bench)/' },
  },
  {
    name: 'no-dev-tooling-in-production',
    severity: 'error',
    comment: 'Production code (src/, hsm-bridge/src/, bridge-protocol/) does not import tests, scripts or benches.',
    from: { path: '^(src|hsm-bridge/src|bridge-protocol)/' },
    to: { path: '^(test|scripts|bench|hsm-bridge/test|hsm-bridge/dev)/' },
  },
];
for (const from of folders) {
  const upward = folders.filter(
    (to) =>
      to !== from &&
      (layerOf[to] > layerOf[from] || (layerOf[to] === layerOf[from] && !SAME_LAYER.some(([a, b]) => a === from && b === to))),
  );
  if (upward.length === 0) continue;
  forbidden.push({
    name: `layer-${from}`,
    severity: 'error',
    comment: `src/${from} may not import ${upward.map((f) => `src/${f}`).join(', ')} (same or higher layer).`,
    from: { path: `^src/${from}/` },
    to: { path: `^src/(${upward.join('|')})/` },
  });
}
// Top-level files of src/ other than index.ts would be an unlayered back door.
forbidden.push({
  name: 'no-loose-files',
  severity: 'error',
  comment: 'Every module of src/ lives in a layer folder; only src/index.ts stands at the top.',
  from: { path: '^src/' },
  to: { path: '^src/[^/]+\\.ts$', pathNot: '^src/index\\.ts$' },
});

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a cycle through types is still a cycle in the design.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^node_modules' },
  },
};
