/**
 * What `coffer rm NAME --version N[,M…]` and `coffer undelete` share: the version list flag and
 * how a result of a delete, undelete or destroy of versions is printed (issue 16).
 */
import { CofferError } from "../errors.ts";
import type { VersionState } from "../core/secret.ts";
import { parseWhole } from "./io.ts";
import { printJson } from "./open.ts";
import type { Context } from "./command.ts";

/** Parses `--version N[,M…]`: 1 to 100 whole numbers ≥ 1, comma-separated. */
export function parseVersionList(text: string): number[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length > 100) throw new CofferError("E_INVALID_VALUE", "invalid --version: at most 100 versions at once");
  return [...new Set(parts.map((p) => parseWhole(p, "--version", 1)))];
}

/** Prints what a delete (`deleted`), undelete or destroy of versions left: JSON, or one line per version. */
export function printVersionChange(ctx: Context, kind: "delete" | "undelete" | "destroy", result: { name: string; versions: VersionState[] }): void {
  if (ctx.flags.json === true) return printJson(ctx, result);
  const { name } = result;
  for (const v of result.versions) {
    if (v.destroyed) {
      ctx.say(kind === "destroy"
        ? `destroyed v${v.version} of ${name}: its value is gone for good`
        : `v${v.version} of ${name} was destroyed: its value is gone for good and cannot be restored`);
    } else if (v.deletedAt !== null) {
      ctx.say(`deleted v${v.version} of ${name} (\`coffer undelete ${name} --version ${v.version}\` restores it)`);
    } else {
      ctx.say(`v${v.version} of ${name} is readable`);
    }
  }
}
