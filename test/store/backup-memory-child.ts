/**
 * Child process of backup-memory.test.ts: makes or restores one backup and prints the peak
 * resident memory (KiB) before and after, as JSON. argv: backup HOME OUT | restore HOME FILE IDENTITY
 */
import { join } from "node:path";
import { loadIdentity, openStore } from "../../src/index.ts";
import { backupStore, restoreBackup } from "../../src/store/backup.ts";

const [mode, home, file, identityFile] = process.argv.slice(2) as [string, string, string, string | undefined];
const env = { COFFER_HOME: home };
await import("age-encryption");
if (mode === "backup") {
  const identity = await loadIdentity(join(home, "identity"));
  const store = await openStore({ env, identityObject: identity });
  const before = process.resourceUsage().maxRSS;
  const r = await backupStore(store, { out: file, recipients: [identity.recipient], identityFile: join(home, "identity"), identity });
  const after = process.resourceUsage().maxRSS;
  store.close();
  console.log(JSON.stringify({ before, after, verified: r.verified, bytes: r.bytes }));
} else {
  const before = process.resourceUsage().maxRSS;
  const r = await restoreBackup({ env, file, identityFile: identityFile! });
  const after = process.resourceUsage().maxRSS;
  const restoredCount = r.secrets;
  console.log(JSON.stringify({ before, after, restoredCount }));
}
