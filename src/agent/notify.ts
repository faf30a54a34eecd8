/**
 * sd_notify for the agent. Node has no AF_UNIX datagram socket, so coffer hands each message
 * to `systemd-notify --pid=<agent pid>`, which sends it to `$NOTIFY_SOCKET` and waits for the
 * service manager to take it (its barrier). The message comes from a child process, so the
 * unit needs `NotifyAccess=all` (`coffer units` renders it so; docs/systemd.md says why).
 * Only fixed words and counts go into messages: never a value.
 */
import { execFile } from "node:child_process";

/** Sends `fields` (READY=1, STATUS=…, STOPPING=1, RELOADING=1) when `$NOTIFY_SOCKET` is set. */
export function sdNotify(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === "") return Promise.resolve();
  const args = [`--pid=${process.pid}`, ...Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, " ")}`)];
  return new Promise((resolve, reject) => {
    execFile("systemd-notify", args, { env: { PATH: env.PATH ?? "/usr/bin:/bin", NOTIFY_SOCKET: socket }, timeout: 10_000 }, (err) =>
      err === null ? resolve() : reject(new Error(`systemd-notify failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`)),
    );
  });
}
