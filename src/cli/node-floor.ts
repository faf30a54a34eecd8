/**
 * The CLI's floor: the first module the `coffer` bin loads. On a Node older than coffer needs,
 * every command prints the one line that says so and exits 1, before loading anything that could
 * fail on that Node (and would then surface as an internal error).
 */
import { nodeFloorProblem } from "../floor.ts";

const problem = nodeFloorProblem();
if (problem !== null) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
