/**
 * The library's floor: the first module of the library entry (src/index.ts). On a Node older
 * than coffer needs, `import "coffer"` and `require("coffer")` throw, synchronously, the line
 * that says so. A library never exits its host process: the host decides what to do.
 */
import { nodeFloorProblem } from "./floor.ts";

const problem = nodeFloorProblem();
if (problem !== null) throw new Error(problem);
