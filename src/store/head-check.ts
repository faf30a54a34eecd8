/**
 * The store against its last signed head (docs/design.md §9), checked each time it is opened: an
 * older copy of the store or its WAL put back would silently undo later changes, and its audit
 * chain no longer holds the record the head signed. Only store.ts imports this file: its
 * declarations name the storage driver, which the package's public types must not reach.
 */
import { CofferError } from "../errors.ts";
import type { SqliteDriver } from "../storage/sqlite.ts";
import type { ChainHead, HeadFile, HeadStatus } from "./head.ts";

/** Signs the chain's tail as the new head (nothing for an empty chain); gives the tail. */
export function signTail(db: SqliteDriver, head: HeadFile): ChainHead | undefined {
  const tail = db.tail();
  if (tail !== undefined) head.write(tail);
  return tail;
}

// Cheap on purpose (every `coffer get` opens the store): one signature check and one indexed
// row, never a walk of the chain. `coffer audit verify` re-checks the chain itself.
export function checkHead(db: SqliteDriver, head: HeadFile, options: { acceptHead?: boolean; notice?: (message: string) => void }): HeadStatus {
  const path = db.path;
  const signed = head.read();
  if (signed === undefined) {
    const tail = signTail(db, head) ?? { count: 0, hash: "" };
    options.notice?.(
      `the store ${path} had no signed head (it was written before coffer signed its audit chain); ` +
        `signed one now at record ${tail.count}, kept in ${head.path}`,
    );
    return { state: "new", signed: tail };
  }
  const found = db.auditHashAt(signed.count);
  if (found === signed.hash) return { state: "ok", signed: { count: signed.count, hash: signed.hash } };
  const tail = db.tail() ?? { count: 0, hash: "" };
  if (options.acceptHead === true) {
    return { state: "diverged", signed: { count: signed.count, hash: signed.hash, at: signed.at }, found: tail };
  }
  throw new CofferError(
    "E_INTEGRITY",
    `the store ${path} is not the one last written: ` +
      (found === undefined
        ? `its audit chain has ${tail.count} records, fewer than the ${signed.count} signed on ${signed.at}`
        : `its audit record ${signed.count} differs from the one signed on ${signed.at}`) +
      "; an older copy of the store (or of its WAL) was put back, which would silently undo later changes. " +
      "If you put it back yourself, take it knowingly with `coffer audit accept`",
  );
}
