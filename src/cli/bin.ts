#!/usr/bin/env node
// The `coffer` executable. Turns on Node's compile cache before anything else loads, so that
// every later module, main included, starts from cached code.
import module from "node:module";

module.enableCompileCache?.();
await import("./main.ts");
