/**
 * The audit log, newest first, filtered by subject, action and name prefix, with the hash
 * chain's verification state (`GET /v1/audit/verify`). Records never hold values.
 */
import { useState } from "preact/hooks";
import { useSession } from "../session.ts";
import { ErrorNote, Show, Time, useAction, useLoad, Table } from "../ui.tsx";

interface AuditRecord {
  seq: number;
  at: string;
  actor: string;
  action: string;
  name: string | null;
  version: number | null;
  detail: Record<string, unknown> | null;
}

interface Verified {
  ok: boolean;
  records: number;
  brokenAt?: number;
  reason?: string;
}

interface Filters {
  subject: string;
  action: string;
  prefix: string;
}

const PAGE = 50;
/** `before` of the first page: above any seq. */
const END = "999999999999999";

function query(f: Filters, before: string): string {
  const q = new URLSearchParams({ before, limit: String(PAGE) });
  for (const k of ["subject", "action", "prefix"] as const) if (f[k].trim() !== "") q.set(k, f[k].trim());
  return `/v1/audit?${q}`;
}

export function AuditPage() {
  const { call } = useSession();
  const [draft, setDraft] = useState<Filters>({ subject: "", action: "", prefix: "" });
  const [filters, setFilters] = useState<Filters>(draft);
  const [older, setOlder] = useState<AuditRecord[]>([]);
  const first = useLoad(() => call<{ records: AuditRecord[] }>("GET", query(filters, END)), [filters]);
  const verify = useLoad(() => call<Verified>("GET", "/v1/audit/verify"), []);
  const more = useAction();
  const records = [...(first.data?.records ?? []), ...older];
  const last = records.at(-1);
  const loadOlder = () =>
    more.run(async () => {
      if (last === undefined) return;
      const r = await call<{ records: AuditRecord[] }>("GET", query(filters, String(last.seq)));
      setOlder([...older, ...r.records]);
    });
  const apply = (e: Event): void => {
    e.preventDefault();
    setOlder([]);
    setFilters({ ...draft });
  };
  const input = (k: keyof Filters, label: string, placeholder: string) => (
    <div>
      <label for={`audit-${k}`}>{label}</label>
      <input id={`audit-${k}`} value={draft[k]} placeholder={placeholder} onInput={(e) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value })} />
    </div>
  );
  return (
    <section>
      <h1>Audit log</h1>
      <Show loaded={verify}>
        {(v) => (
          <p class={v.ok ? "notice" : "error"} role="status">
            {v.ok ? `Hash chain verified: ${v.records} records checked, none altered.` : `Hash chain broken at record ${v.brokenAt ?? "?"}: ${v.reason ?? "a record does not match its hash"}.`}
          </p>
        )}
      </Show>
      <form class="filters" onSubmit={apply}>
        {input("subject", "Subject", "token:ab12… or a user")}
        {input("action", "Action", "secret.read")}
        {input("prefix", "Name prefix", "app/")}
        <button type="submit">Filter</button>
      </form>
      <Show loaded={first}>
        {() =>
          records.length === 0 ? (
            <p class="muted">No records match.</p>
          ) : (
            <Table head={["#", "When", "Subject", "Action", "Name", "Detail"]} class="audit">
              {records.map((r) => (
                <tr key={r.seq}>
                  <td>{r.seq}</td>
                  <td>
                    <Time at={r.at} />
                  </td>
                  <td class="wrap">{r.actor}</td>
                  <td>{r.action}</td>
                  <td class="wrap">
                    {r.name ?? ""}
                    {r.version !== null && ` v${r.version}`}
                  </td>
                  <td class="wrap detail">{r.detail === null ? "" : JSON.stringify(r.detail)}</td>
                </tr>
              ))}
            </Table>
          )
        }
      </Show>
      <ErrorNote error={more.error} />
      {(first.data?.records.length ?? 0) === PAGE && (
        <button type="button" onClick={() => void loadOlder()} disabled={more.busy}>
          Older records
        </button>
      )}
    </section>
  );
}
