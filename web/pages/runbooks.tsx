/**
 * Runbooks: the server's list, and a runbook's page with its params as a form, Run, and its
 * history. A run opens the execution's page (execution.tsx), which shows the output live.
 */
import { useState } from "preact/hooks";
import { go, link } from "../router.ts";
import { useSession } from "../session.ts";
import { ErrorNote, Show, Time, useAction, useLoad, Table } from "../ui.tsx";
import type { Execution, RunbookInfo, ValidRunbook } from "../../src/client/wire.ts";

export function RunbooksPage() {
  const { call } = useSession();
  const list = useLoad(() => call<{ runbooks: RunbookInfo[] }>("GET", "/v1/runbooks"), []);
  return (
    <section>
      <h1>Runbooks</h1>
      <Show loaded={list}>
        {({ runbooks }) =>
          runbooks.length === 0 ? (
            <p class="muted">No runbooks you may read on this server.</p>
          ) : (
            <ul class="cards">
              {runbooks.map((r) => (
                <li key={r.name} class="card">
                  <h2>
                    <a href={link(`/runbook/${r.name}`)}>{r.name}</a> {!r.valid && <span class="badge bad">invalid</span>}
                    {r.valid && r.approvals > 0 && <span class="badge">needs {r.approvals} approval{r.approvals === 1 ? "" : "s"}</span>}
                  </h2>
                  {r.valid && <p>{r.description}</p>}
                </li>
              ))}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

export function RunbookPage({ name }: { name: string }) {
  const { call } = useSession();
  const runbook = useLoad(() => call<{ runbook: RunbookInfo }>("GET", `/v1/runbooks/${encodeURIComponent(name)}`), [name]);
  const history = useLoad(() => call<{ executions: Execution[] }>("GET", `/v1/executions?runbook=${encodeURIComponent(name)}&limit=20`), [name]);
  return (
    <section>
      <p>
        <a href={link("/runbooks")}>← Runbooks</a>
      </p>
      <h1 class="name">{name}</h1>
      <Show loaded={runbook}>{({ runbook: r }) => <RunForm runbook={r} />}</Show>
      <h2>History</h2>
      <Show loaded={history}>{({ executions }) => <ExecutionList executions={executions} />}</Show>
    </section>
  );
}

function RunForm({ runbook }: { runbook: RunbookInfo }) {
  if (!runbook.valid) {
    return (
      <div class="error" role="alert">
        <p>This runbook's file is invalid and cannot run:</p>
        <ul>
          {runbook.problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      </div>
    );
  }
  return <ValidRunForm runbook={runbook} />;
}

function ValidRunForm({ runbook }: { runbook: ValidRunbook }) {
  const { call } = useSession();
  const { params } = runbook;
  const [values, setValues] = useState<Record<string, string>>(Object.fromEntries(params.map((p) => [p.name, p.default ?? ""])));
  const action = useAction();
  const submit = (e: Event): void => {
    e.preventDefault();
    void action.run(async () => {
      const given = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== ""));
      const r = await call<{ id: string }>("POST", `/v1/runbooks/${encodeURIComponent(runbook.name)}/run`, { params: given });
      go(`/execution/${r.id}`);
    });
  };
  return (
    <form class="card" onSubmit={submit}>
      <p>{runbook.description}</p>
      <p class="muted">
        Secrets: {runbook.secrets.join(", ") || "none"} · isolation: {runbook.isolation}
        {runbook.approvals > 0 && ` · needs ${runbook.approvals} approval(s) before it runs`}
      </p>
      {params.map((p) => (
        <div key={p.name}>
          <label for={`param-${p.name}`}>
            {p.name}
            {p.required && " (required)"}
          </label>
          <input
            id={`param-${p.name}`}
            value={values[p.name] ?? ""}
            required={p.required}
            spellcheck={false}
            onInput={(e) => setValues({ ...values, [p.name]: (e.target as HTMLInputElement).value })}
          />
          {p.description && <p class="muted">{p.description}</p>}
        </div>
      ))}
      <button type="submit" disabled={action.busy}>
        Run
      </button>
      <ErrorNote error={action.error} />
    </form>
  );
}

/** Executions, newest first, each linking to its page. */
export function ExecutionList({ executions }: { executions: Execution[] }) {
  if (executions.length === 0) return <p class="muted">No executions yet.</p>;
  return (
    <Table head={["Execution", "Runbook", "Status", "By", "Requested"]}>
      {executions.map((e) => (
        <tr key={e.id}>
          <td>
            <a href={link(`/execution/${e.id}`)}>{e.id.slice(0, 8)}</a>
          </td>
          <td>{e.runbook}</td>
          <td>
            <span class={`status ${e.status}`}>{e.status}</span>
            {e.exitCode !== null && ` (exit ${e.exitCode})`}
          </td>
          <td class="wrap">{e.by}</td>
          <td>
            <Time at={e.createdAt} />
          </td>
        </tr>
      ))}
    </Table>
  );
}
