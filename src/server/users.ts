/**
 * A user name to its uid and gid, for `runbooks.runAs` (issue 13): asked of the system's user
 * database with `getent passwd NAME` (so NSS users, LDAP or sssd, resolve as `id` would), read from
 * /etc/passwd only where getent is missing. No native module, no shell: the name is checked
 * against {@link USER_NAME_PATTERN} first and passed as one argument.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { show } from "../errors.ts";

/** A POSIX-portable user name (what useradd accepts by default), at most 32 characters. */
export const USER_NAME_PATTERN = "^[a-z_][a-z0-9_-]{0,31}$";
const USER_NAME_RE = new RegExp(USER_NAME_PATTERN);

/** A user of this host. */
export interface HostUser {
  user: string;
  uid: number;
  gid: number;
}

/**
 * Looks a user up by name.
 * @param passwd - the passwd file read where getent is missing (tests)
 * @returns the user, or the rule broken in words ("names no user of this host …")
 */
export function lookupUser(name: string, passwd = "/etc/passwd"): HostUser | { rule: string } {
  if (!USER_NAME_RE.test(name)) return { rule: `must be a user name matching ${USER_NAME_PATTERN}, got ${show(name)}` };
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8", timeout: 10_000 });
  let line: string | undefined;
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    let text: string;
    try {
      text = readFileSync(passwd, "utf8");
    } catch (err) {
      return { rule: `cannot be looked up: no getent, and ${passwd} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})` };
    }
    line = text.split("\n").find((l) => l.split(":")[0] === name);
  } else if (r.error !== undefined) {
    return { rule: `cannot be looked up: getent passwd failed (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` };
  } else if (r.status === 0) {
    line = r.stdout.split("\n")[0];
  } else if (r.status !== 2) {
    return { rule: `cannot be looked up: getent passwd exited with status ${r.status}` };
  }
  const fields = line?.split(":");
  const uid = Number(fields?.[2]);
  const gid = Number(fields?.[3]);
  if (fields === undefined || fields[0] !== name || !Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || fields[2] === "" || fields[3] === "") {
    return { rule: `names ${show(name)}, which is not a user of this host; create it (useradd --system ${name}) or name another` };
  }
  return { user: name, uid, gid };
}
