/**
 * Roles: the config file's (read-only) and the database's (edit, delete, create). A rule is
 * written as the CLI's `--rule` is, `PATH:CAPS`, split at the last `:` (`sys:tokens:read`).
 */
import { useState } from "preact/hooks";
import { go, link } from "../router.ts";
import { useSession } from "../session.ts";
import { ConfirmButton, ErrorNote, Show, Time, useAction, useLoad } from "../ui.tsx";

interface Rule {
  path: string;
  capabilities: string[];
}

interface RoleView {
  name: string;
  rules: Rule[];
  managedBy: "config" | "api";
  version: number | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

const ruleText = (r: Rule): string => `${r.path}:${r.capabilities.join(",")}`;

/** Lines of `PATH:CAPS` → rules; a line without a `:` or capabilities is a problem. */
function parseRules(text: string): { rules: Rule[] } | { problem: string } {
  const rules: Rule[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "") continue;
    const at = line.lastIndexOf(":");
    const caps = line.slice(at + 1).split(",").map((c) => c.trim()).filter((c) => c !== "");
    if (at <= 0 || caps.length === 0) return { problem: `line ${i + 1}: write a rule as PATH:CAPABILITIES, e.g. app/**:read,list` };
    rules.push({ path: line.slice(0, at), capabilities: caps });
  }
  return rules.length === 0 ? { problem: "give at least one rule" } : { rules };
}

function Rules({ rules }: { rules: Rule[] }) {
  return (
    <ul class="rules">
      {rules.map((rule) => (
        <li key={ruleText(rule)}>
          <code>{ruleText(rule)}</code>
        </li>
      ))}
    </ul>
  );
}

export function RolesPage() {
  const { call } = useSession();
  const roles = useLoad(() => call<{ roles: RoleView[] }>("GET", "/v1/roles"), []);
  return (
    <section>
      <div class="title">
        <h1>Roles</h1>
        <a class="button" href={link("/new-role")}>
          New role
        </a>
      </div>
      <Show loaded={roles}>
        {({ roles: list }) => (
          <ul class="cards">
            {list.map((r) => (
              <li key={r.name} class="card">
                <h2>
                  <a href={link(`/role/${r.name}`)}>{r.name}</a>{" "}
                  <span class="badge">{r.managedBy === "config" ? "managed by config" : `v${r.version ?? "?"}`}</span>
                </h2>
                <Rules rules={r.rules} />
              </li>
            ))}
          </ul>
        )}
      </Show>
    </section>
  );
}

/** One role: shown, and editable unless the config file manages it; `name` "" creates one. */
export function RolePage({ name }: { name: string }) {
  return (
    <section>
      <p>
        <a href={link("/roles")}>← Roles</a>
      </p>
      <h1 class="name">{name === "" ? "New role" : name}</h1>
      {name === "" ? <RoleForm /> : <ExistingRole name={name} />}
    </section>
  );
}

function ExistingRole({ name }: { name: string }) {
  const { call } = useSession();
  const role = useLoad(() => call<RoleView>("GET", `/v1/roles/${encodeURIComponent(name)}`), [name]);
  return (
        <Show loaded={role}>
          {(r) =>
            r.managedBy === "config" ? (
              <>
                <p class="muted">Managed by the server's config file: change it there. The API cannot.</p>
                <Rules rules={r.rules} />
              </>
            ) : (
              <>
                <p class="muted">
                  Version {r.version} · changed by {r.updatedBy} · <Time at={r.updatedAt} />
                </p>
                <RoleForm role={r} onSaved={role.reload} />
              </>
            )
          }
        </Show>
  );
}

function RoleForm({ role, onSaved }: { role?: RoleView; onSaved?: () => void }) {
  const { call } = useSession();
  const [name, setName] = useState("");
  const [text, setText] = useState(role?.rules.map(ruleText).join("\n") ?? "");
  const [saved, setSaved] = useState("");
  const action = useAction();
  const target = role?.name ?? name.trim();
  const submit = (e: Event): void => {
    e.preventDefault();
    setSaved("");
    void action.run(async () => {
      const parsed = parseRules(text);
      if ("problem" in parsed) throw new Error(parsed.problem);
      const r = await call<RoleView>("PUT", `/v1/roles/${encodeURIComponent(target)}`, { rules: parsed.rules });
      setSaved(`Saved ${r.name} (version ${r.version}); every server instance applies it within a second.`);
      if (role === undefined) go(`/role/${r.name}`);
      else onSaved?.();
    });
  };
  const remove = () =>
    action.run(async () => {
      await call("DELETE", `/v1/roles/${encodeURIComponent(target)}`);
      go("/roles");
    });
  return (
    <form class="card" onSubmit={submit}>
      {role === undefined && (
        <>
          <label for="role-name">Name</label>
          <input id="role-name" value={name} required maxLength={64} placeholder="deployer" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </>
      )}
      <label for="role-rules">Rules, one per line: PATH:CAPABILITIES</label>
      <textarea id="role-rules" rows={5} value={text} spellcheck={false} placeholder={"app/**:read,list\nrunbook:*:run"} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
      <p class="muted">You can grant only what your own roles hold.</p>
      <div class="actions">
        <button type="submit" disabled={action.busy}>
          Save role
        </button>
        {role !== undefined && <ConfirmButton label="Delete role" question={`Delete role ${role.name}? Tokens holding it lose its rules.`} confirm="Delete" onConfirm={() => void remove()} />}
      </div>
      {saved !== "" && (
        <p class="notice" role="status">
          {saved}
        </p>
      )}
      <ErrorNote error={action.error} />
    </form>
  );
}
