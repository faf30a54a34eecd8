/**
 * One execution: its status, params and approvals, its output as it is written (read with
 * fetch() streaming: EventSource cannot send the Authorization header, and a token never goes in
 * a URL), Cancel, and Approve / Reject while it waits for approval. Output is shown as text.
 */
import { useEffect, useState } from "preact/hooks";
import { stream } from "../api.ts";
import { link } from "../router.ts";
import { useSession } from "../session.ts";
import { ErrorNote, Show, Time, useAction, useLoad } from "../ui.tsx";
import { isFinalStatus, type Execution } from "../../src/client/wire.ts";

/** The most output the page holds; the rest stays on the server (`coffer runbook output`). */
const MAX_SHOWN = 1024 * 1024;

export function ExecutionPage({ id }: { id: string }) {
  const { call, token } = useSession();
  const loaded = useLoad(() => call<{ execution: Execution }>("GET", `/v1/executions/${encodeURIComponent(id)}`), [id]);
  const [ended, setEnded] = useState<Execution | undefined>(undefined);
  const [output, setOutput] = useState("");
  const [streamError, setStreamError] = useState<unknown>(undefined);
  const action = useAction();

  useEffect(() => {
    const abort = new AbortController();
    let text = "";
    stream(token, `/v1/executions/${encodeURIComponent(id)}/output`, (e) => {
      if (e.event === "output") {
        if (text.length < MAX_SHOWN) text = (text + (JSON.parse(e.data) as { text: string }).text).slice(0, MAX_SHOWN);
        setOutput(text);
      } else if (e.event === "end") {
        setEnded((JSON.parse(e.data) as { execution: Execution }).execution);
      }
    }, abort.signal).catch((err: unknown) => setStreamError(err));
    return () => abort.abort();
  }, [id, token]);

  const act = (what: "cancel" | "approve") =>
    action.run(async () => {
      await call("POST", `/v1/executions/${encodeURIComponent(id)}/${what}`);
      loaded.reload();
    });

  return (
    <section>
      <Show loaded={loaded}>
        {({ execution }) => {
          const e = ended ?? execution;
          const pending = e.status === "pending-approval";
          return (
            <>
              <p>
                <a href={link(`/runbook/${e.runbook}`)}>← {e.runbook}</a>
              </p>
              <h1 class="name">Execution {e.id.slice(0, 8)}</h1>
              <p role="status">
                <span class={`status ${e.status}`} data-status={e.status}>
                  {e.status}
                </span>
                {e.exitCode !== null && ` · exit code ${e.exitCode}`}
                {e.signal !== null && ` · signal ${e.signal}`}
                {e.truncated && " · output truncated at the runbook's limit"}
              </p>
              <p class="muted">
                Requested by {e.by} · <Time at={e.createdAt} />
                {e.approvalsRequired > 0 && ` · approvals ${e.approvals.length}/${e.approvalsRequired}`}
                {e.approvals.length > 0 && ` · approved by ${e.approvals.join(", ")}`}
              </p>
              {Object.keys(e.params).length > 0 && (
                <p class="muted wrap">
                  Params:{" "}
                  {Object.entries(e.params)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(" ")}
                </p>
              )}
              <div class="actions">
                {pending && (
                  <button type="button" onClick={() => void act("approve")} disabled={action.busy}>
                    Approve
                  </button>
                )}
                {!isFinalStatus(e.status) && (
                  <button type="button" class="danger" onClick={() => void act("cancel")} disabled={action.busy}>
                    {pending ? "Reject" : "Cancel"}
                  </button>
                )}
              </div>
              <ErrorNote error={action.error} />
            </>
          );
        }}
      </Show>
      <h2>Output</h2>
      <ErrorNote error={streamError} />
      <pre class="output" aria-label="Output" aria-live="polite">
        {output}
      </pre>
    </section>
  );
}
