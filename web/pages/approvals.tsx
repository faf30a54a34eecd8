/** Executions waiting for approval, among those the caller may read; each links to its page. */
import { useSession } from "../session.ts";
import { Show, useLoad } from "../ui.tsx";
import { ExecutionList } from "./runbooks.tsx";
import type { Execution } from "../../src/client/wire.ts";

export function ApprovalsPage() {
  const { call } = useSession();
  const list = useLoad(async () => (await call<{ executions: Execution[] }>("GET", "/v1/executions?limit=100")).executions.filter((e) => e.status === "pending-approval"), []);
  return (
    <section>
      <h1>Pending approvals</h1>
      <p class="muted">A runbook that needs approvals waits here until someone other than its requester approves it, or an approver rejects it.</p>
      <Show loaded={list}>{(executions) => (executions.length === 0 ? <p class="muted">Nothing waits for approval.</p> : <ExecutionList executions={executions} />)}</Show>
    </section>
  );
}
