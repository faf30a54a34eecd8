/**
 * The entry of coffer's single executable (`npm run build:binary`, docs/design.md §17). Node runs
 * a single executable's main as CommonJS, which has no top-level await, so this is bin.ts without
 * it: the SIGUSR1 listener first (see bin.ts: without one, SIGUSR1 opens the inspector to any
 * local user), then main. No compile cache: the binary carries its own code cache.
 */
process.on("SIGUSR1", () => {});

// A dynamic import runs main after the listener is in place (a static one would run first).
void import("./main.ts");
