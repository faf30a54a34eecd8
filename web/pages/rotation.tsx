/**
 * A secret's rotation on its page: the policy and where it stands (ok, rotating, failing with the
 * last error, unknown), and Rotate now. Setting a policy stays with `coffer rotation set`.
 */
import { ApiError, secretPath } from "../api.ts";
import { useSession } from "../session.ts";
import { ErrorNote, Time, useAction, useLoad } from "../ui.tsx";
import type { RotationApply, RotationResult, RotationView } from "../../src/client/wire.ts";

const applyText = (a: RotationApply): string => (a === null ? "stored only" : "runbook" in a ? `runbook ${a.runbook}` : `PostgreSQL role ${a.postgres.role}`);

export function RotationPanel({ name, onRotated }: { name: string; onRotated: (version: number) => void }) {
  const { call } = useSession();
  const policy = useLoad(() => call<RotationView>("GET", secretPath(name, "/v1/rotation/")), [name]);
  const action = useAction();
  const rotate = () =>
    action.run(async () => {
      const r = await call<RotationResult>("POST", secretPath(name, "/v1/rotation/"));
      policy.reload();
      onRotated(r.version);
    });
  if (policy.error instanceof ApiError && policy.error.status === 404) {
    return <p class="muted">No rotation policy. Set one with <code>coffer rotation set {name} --every 30d</code>.</p>;
  }
  if (policy.error !== undefined) return <ErrorNote error={policy.error} />;
  const p = policy.data;
  if (p === undefined) return null;
  return (
    <div class="card">
      <p>
        <span class={`status rotation-${p.state}`} data-rotation={p.state}>
          {p.state}
        </span>{" "}
        · {p.every === null ? "only when asked" : `every ${p.every}`} · {p.generate.length} {p.generate.charset}
        {p.generate.charset === "words" ? " words" : " characters"} · {applyText(p.apply)}
      </p>
      <p class="muted">
        Last rotated <Time at={p.lastRotatedAt} />
        {p.nextAt !== null && (
          <>
            {" "}
            · next <Time at={p.nextAt} />
          </>
        )}
      </p>
      {p.lastError !== null && (
        <p class="error">
          Last attempt failed{p.failures > 1 ? ` (${p.failures} times)` : ""}: {p.lastError}
        </p>
      )}
      <button type="button" onClick={() => void rotate()} disabled={action.busy || p.state === "rotating"}>
        Rotate now
      </button>
      <ErrorNote error={action.error} />
    </div>
  );
}
