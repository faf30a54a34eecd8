#!/usr/bin/env node
// The `coffer` executable.
//
// Its first import is the Node floor: on a Node too old, one clear line and exit 1, before
// anything else loads. So this file imports nothing else statically: a static import is linked
// and run before the check (in the code-split bundle, a shared chunk of `node:` shims would be),
// and could fail on that Node first. Built-ins come through process.getBuiltinModule after the
// check; the rest of coffer through the dynamic import at the end.
import "./node-floor.ts";

// Then, before anything else runs, a SIGUSR1 listener: without one, SIGUSR1 makes Node open its inspector on
// 127.0.0.1:9229, and any local user who can connect to it runs code inside coffer. A listener
// replaces that activation. It does nothing itself; code that wants the signal (such as `run`,
// which passes it on to its command) adds its own listener beside it.
process.on("SIGUSR1", () => {});

const module = process.getBuiltinModule("node:module");
const { lstatSync, mkdirSync } = process.getBuiltinModule("node:fs");
const { homedir } = process.getBuiltinModule("node:os");
const { dirname, join } = process.getBuiltinModule("node:path");

/**
 * The compile cache dir: `$XDG_CACHE_HOME/coffer/compile-cache` (else `~/.cache/…`), created
 * 0700. null, and no cache, when it or a dir above it (up to the cache base) is not the user's
 * own or is writable by others, or anyone but the user can read the cache dir itself: Node's
 * default, a shared dir under /tmp, would run code another user planted there.
 */
function compileCacheDir(): string | null {
  try {
    const xdg = process.env.XDG_CACHE_HOME;
    const base = xdg !== undefined && xdg.startsWith("/") ? xdg : join(process.env.HOME?.startsWith("/") === true ? process.env.HOME : homedir(), ".cache");
    const dir = join(base, "coffer", "compile-cache");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const uid = process.getuid?.();
    for (let d = dir; ; d = dirname(d)) {
      const st = lstatSync(d);
      const mine = st.uid === uid || (d !== dir && st.uid === 0);
      const open = d === dir ? (st.mode & 0o077) !== 0 : (st.mode & 0o022) !== 0;
      if (!st.isDirectory() || !mine || open) return null;
      if (d === base || d === dirname(d)) return dir;
    }
  } catch {
    return null;
  }
}

// The compile cache goes on before anything else loads, so that every later module, main
// included, starts from cached code.
const cacheDir = compileCacheDir();
if (cacheDir !== null) module.enableCompileCache?.(cacheDir);
await import("./main.ts");
