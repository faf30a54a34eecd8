/**
 * The oldest Node coffer runs on, and the one check of it, shared by the `coffer` bin and the
 * library entry (docs/design.md §"The Node floor").
 *
 * On an older Node, coffer would fail far from the cause: `node:sqlite` is missing, so the first
 * real command said "internal error (ERR_UNKNOWN_BUILTIN_MODULE)". Both entries run this first
 * and say what is wrong instead. It touches only the `process` global, loads no module and has
 * no top-level await, so it runs before anything that could fail to load, and `require("coffer")`
 * (require of an ES module, which refuses top-level await) keeps working.
 *
 * Node before 20.16 has no `process.getBuiltinModule`, through which the bundles load every
 * built-in: its absence alone is a Node too old.
 */

/** The major version of Node coffer needs (package.json "engines" says the same). */
export const NODE_FLOOR = 24;

/** `coffer needs Node 24 or newer; this is Node 20.20.2`, or null on a Node new enough. */
export function nodeFloorProblem(): string | null {
  const version = process.versions.node;
  const major = Number.parseInt(version, 10);
  if (typeof process.getBuiltinModule === "function" && major >= NODE_FLOOR) return null;
  return `coffer needs Node ${NODE_FLOOR} or newer; this is Node ${version}`;
}
