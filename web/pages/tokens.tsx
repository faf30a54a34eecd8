/** API tokens: the list (never the tokens), create with roles and a TTL (shown once, with Copy), revoke. */
import { useState } from "preact/hooks";
import { useSession } from "../session.ts";
import { ConfirmButton, ErrorNote, Show, Time, useAction, useLoad, Table } from "../ui.tsx";
import type { ServerNewToken, ServerTokenInfo } from "../../src/client/wire.ts";

export function TokensPage() {
  const { call } = useSession();
  const tokens = useLoad(() => call<{ tokens: ServerTokenInfo[] }>("GET", "/v1/tokens"), []);
  const [created, setCreated] = useState<ServerNewToken | undefined>(undefined);
  const action = useAction();
  const revoke = (t: ServerTokenInfo) =>
    action.run(async () => {
      await call("DELETE", `/v1/tokens/${encodeURIComponent(t.id)}`);
      tokens.reload();
    });
  return (
    <section>
      <h1>Tokens</h1>
      <CreateToken
        onCreated={(t) => {
          setCreated(t);
          tokens.reload();
        }}
      />
      {created !== undefined && <ShownOnce token={created} onDismiss={() => setCreated(undefined)} />}
      <h2>Tokens</h2>
      <ErrorNote error={action.error} />
      <Show loaded={tokens}>
        {({ tokens: list }) => (
          <Table head={["Name", "Roles", "Made by", "Expires", ""]}>
            {list.map((t) => (
              <tr key={t.id} class={t.revokedAt !== null ? "revoked" : undefined}>
                <td class="wrap">
                  {t.name} <span class="muted">{t.id}</span>
                </td>
                <td class="wrap">{t.roles.join(", ")}</td>
                <td class="wrap">{t.createdBy}</td>
                <td>
                  <Time at={t.expiresAt} />
                </td>
                <td>
                  {t.revokedAt !== null ? (
                    <span class="muted">
                      revoked <Time at={t.revokedAt} />
                    </span>
                  ) : (
                    <ConfirmButton label="Revoke" question={`Revoke ${t.name}?`} confirm="Revoke token" onConfirm={() => void revoke(t)} disabled={action.busy} />
                  )}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Show>
    </section>
  );
}

function CreateToken({ onCreated }: { onCreated: (t: ServerNewToken) => void }) {
  const { call, self } = useSession();
  // The roles one may grant are those one holds; root may grant any role the server has.
  const roles = useLoad(async () => {
    const known = await call<{ roles: { name: string }[] }>("GET", "/v1/roles").then((r) => r.roles.map((x) => x.name), () => []);
    return [...new Set([...self.roles, ...(self.roles.includes("root") ? known : [])])].sort();
  }, []);
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [ttl, setTtl] = useState("30d");
  const action = useAction();
  const submit = (e: Event): void => {
    e.preventDefault();
    void action.run(async () => {
      const t = await call<ServerNewToken>("POST", "/v1/tokens", { name: name.trim(), roles: chosen, ...(ttl.trim() !== "" && { ttl: ttl.trim() }) });
      setName("");
      setChosen([]);
      onCreated(t);
    });
  };
  return (
    <form class="card" onSubmit={submit}>
      <h2>Create a token</h2>
      <label for="token-name">Name</label>
      <input id="token-name" value={name} required maxLength={64} placeholder="ci-deploy" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <fieldset>
        <legend>Roles</legend>
        {(roles.data ?? self.roles).map((r) => (
          <label key={r} class="check">
            <input
              type="checkbox"
              checked={chosen.includes(r)}
              onChange={(e) => setChosen((e.target as HTMLInputElement).checked ? [...chosen, r] : chosen.filter((x) => x !== r))}
            />
            {r}
          </label>
        ))}
      </fieldset>
      <label for="token-ttl">Expires after</label>
      <input id="token-ttl" value={ttl} placeholder="30d, 12h; empty: never" onInput={(e) => setTtl((e.target as HTMLInputElement).value)} />
      <button type="submit" disabled={action.busy || chosen.length === 0 || name.trim() === ""}>
        Create token
      </button>
      <ErrorNote error={action.error} />
    </form>
  );
}

/** The new token, shown this once: Copy puts it on the clipboard; Done forgets it. */
function ShownOnce({ token, onDismiss }: { token: ServerNewToken; onDismiss: () => void }) {
  const [copied, setCopied] = useState<string>("");
  const copy = (): void => {
    navigator.clipboard.writeText(token.token).then(
      () => setCopied("Copied."),
      () => setCopied("The browser refused the clipboard: select the token and copy it."),
    );
  };
  return (
    <div class="card notice" role="status">
      <p>
        Token <strong>{token.name}</strong> created. It is shown only now: copy it and keep it safe.
      </p>
      <pre aria-label="New token">{token.token}</pre>
      <button type="button" onClick={copy}>
        Copy
      </button>
      <button type="button" onClick={onDismiss}>
        Done
      </button>
      <span class="muted"> {copied}</span>
    </div>
  );
}
