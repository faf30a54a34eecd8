/**
 * The layers of src/ (docs/design.md §2): each folder imports only the folders below it, so no
 * folder imports one that imports it back. `npm test` runs this; an import that breaks a layer
 * fails the build. Type-only imports carry no runtime tie and are allowed anywhere.
 *
 * The map has no cycle, so obeying it leaves no folder loop (checked below when this file loads).
 *
 * The map, top to bottom (a folder may import those listed after its arrow, and errors.ts):
 *   cli       → everything
 *   app       → deliver, providers, config, cache, client, store, identity, crypto, core (the library for apps: connect(), load(), coffer/config)
 *   agent     → deliver, providers, config, core
 *   server    → rotation, runbooks, storage, config, crypto, core
 *   rotation  → runbooks, storage, crypto, config, core (rotation policies, apply targets, the scheduler)
 *   runbooks  → storage, config, core (runbook files, the sandbox, executions)
 *   deliver   → providers, config, core
 *   config    → providers, core (the schema and the checkers use each provider's grammar)
 *   providers → store, cache, client, core (a provider type is one file: its grammar and its factory)
 *   sharing   → store, storage, identity, crypto, core
 *   store     → storage, identity, crypto, core
 *   cache     → identity, crypto, client, core (the encrypted disk cache of server secrets)
 *   client    → core
 *   storage   → core (a driver sees only ciphertext: no crypto)
 *   identity  → crypto, core
 *   crypto    → core
 *   core      → (nothing of coffer but errors.ts)
 */
const FOLDERS = ["agent", "app", "cache", "cli", "client", "config", "core", "crypto", "deliver", "identity", "providers", "rotation", "runbooks", "server", "sharing", "storage", "store"];

/** folder → the folders it may import (besides itself and the files at src/'s root) */
const MAY_IMPORT = {
  cli: FOLDERS,
  app: ["deliver", "providers", "config", "cache", "client", "store", "identity", "crypto", "core"],
  agent: ["deliver", "providers", "config", "core"],
  server: ["rotation", "runbooks", "storage", "config", "crypto", "core"],
  rotation: ["runbooks", "storage", "crypto", "config", "core"],
  runbooks: ["storage", "config", "core"],
  deliver: ["providers", "config", "core"],
  config: ["providers", "core"],
  providers: ["store", "cache", "client", "core"],
  sharing: ["store", "storage", "identity", "crypto", "core"],
  store: ["storage", "identity", "crypto", "core"],
  cache: ["identity", "crypto", "client", "core"],
  client: ["core"],
  storage: ["core"],
  identity: ["crypto", "core"],
  crypto: ["core"],
  core: [],
};

// A map with a cycle would allow a folder loop: refuse to run with one.
const seen = new Set();
const visit = (folder, path) => {
  if (path.includes(folder)) throw new Error(`.dependency-cruiser.cjs: the layer map has a cycle: ${[...path, folder].join(" → ")}`);
  if (seen.has(folder) || folder === "cli") return;
  for (const next of MAY_IMPORT[folder]) visit(next, [...path, folder]);
  seen.add(folder);
};
for (const folder of Object.keys(MAY_IMPORT)) visit(folder, []);

const forbidden = Object.entries(MAY_IMPORT).flatMap(([folder, allowed]) => {
  const others = FOLDERS.filter((f) => f !== folder && !allowed.includes(f));
  if (others.length === 0) return [];
  return [
    {
      name: `layer-${folder}`,
      comment: `src/${folder}/ may import only ${allowed.length > 0 ? allowed.join(", ") : "itself"} (docs/design.md §2)`,
      severity: "error",
      from: { path: `^src/${folder}/` },
      to: { path: `^src/(${others.join("|")})/`, dependencyTypesNot: ["type-only"] },
    },
  ];
});

module.exports = {
  forbidden: [
    ...forbidden,
    {
      name: "src-not-to-test",
      comment: "the product never imports its tests or benchmarks",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    includeOnly: "^src/",
  },
};
