/**
 * A secret's page: description, versions (who, when), Reveal (each reveal is a read in the audit
 * chain), New version, Roll back and Delete; and the New secret form. A revealed value lives only
 * in this page's state: leaving the page (or pressing Hide) drops it from the page.
 */
import { useState } from "preact/hooks";
import { secretPath } from "../api.ts";
import { go, link } from "../router.ts";
import { useSession } from "../session.ts";
import { ConfirmButton, ErrorNote, Show, Time, useAction, useLoad, Table } from "../ui.tsx";
import type { SecretInfo } from "./secrets.tsx";
import { RotationPanel } from "./rotation.tsx";

interface VersionInfo {
  version: number;
  createdAt: string;
  createdBy: string;
  current: boolean;
  /** set while this version is deleted on its own (`coffer rm NAME --version N`) */
  deletedAt?: string | null;
  /** its value was destroyed for good */
  destroyed?: boolean;
}

interface Revealed {
  version: number;
  text: string;
}

export function SecretPage({ name }: { name: string }) {
  const { call } = useSession();
  const versions = useLoad(() => call<{ versions: VersionInfo[] }>("GET", `${secretPath(name)}/versions`), [name]);
  const info = useLoad(
    async () => (await call<{ secrets: SecretInfo[] }>("GET", `/v1/secrets?prefix=${encodeURIComponent(name)}`)).secrets.find((s) => s.name === name),
    [name],
  );
  const [revealed, setRevealed] = useState<Revealed | undefined>(undefined);
  const [editing, setEditing] = useState(false);
  const [message, setMessage] = useState("");
  const action = useAction();
  const reload = (note: string): void => {
    setMessage(note);
    setRevealed(undefined);
    versions.reload();
    info.reload();
  };

  const reveal = () =>
    action.run(async () => {
      const r = await call<{ version: number; value?: string; valueBase64?: string }>("GET", secretPath(name));
      setRevealed({ version: r.version, text: r.value ?? `(bytes, base64) ${r.valueBase64 ?? ""}` });
    });
  const rollback = (version: number) =>
    action.run(async () => {
      const r = await call<{ version: number }>("POST", secretPath(name, "/v1/rollback/"), { version });
      reload(`Rolled back: version ${r.version} holds the value of version ${version}.`);
    });
  const remove = () =>
    action.run(async () => {
      await call("DELETE", secretPath(name));
      go("/secrets");
    });

  return (
    <section>
      <p>
        <a href={link("/secrets")}>← Secrets</a>
      </p>
      <h1 class="name">{name}</h1>
      {info.data?.description && <p class="description">{info.data.description}</p>}
      {message !== "" && (
        <p class="notice" role="status">
          {message}
        </p>
      )}
      <ErrorNote error={action.error} />
      <div class="actions">
        {revealed === undefined ? (
          <button type="button" onClick={() => void reveal()} disabled={action.busy}>
            Reveal
          </button>
        ) : (
          <button type="button" onClick={() => setRevealed(undefined)}>
            Hide
          </button>
        )}
        <button type="button" onClick={() => setEditing(!editing)} aria-expanded={editing}>
          New version
        </button>
        <ConfirmButton label="Delete" question={`Delete ${name}? Its versions are kept; a rollback restores it.`} confirm="Delete secret" onConfirm={() => void remove()} disabled={action.busy} />
      </div>
      {revealed !== undefined && (
        <div class="value">
          <p class="muted">Version {revealed.version} (this read is in the audit log):</p>
          <pre aria-label="Secret value">{revealed.text}</pre>
        </div>
      )}
      {editing && (
        <ValueForm
          name={name}
          current={info.data?.version}
          onDone={(v) => {
            setEditing(false);
            reload(`Saved version ${v}.`);
          }}
        />
      )}
      <h2>Rotation</h2>
      <RotationPanel name={name} onRotated={(v) => reload(`Rotated: version ${v} holds a new value.`)} />
      <h2>Versions</h2>
      <Show loaded={versions}>
        {({ versions: list }) => (
          <Table head={["Version", "Written by", "When", ""]}>
            {[...list].reverse().map((v) => (
              <tr key={v.version}>
                <td>
                  v{v.version}
                  {v.current && <span class="badge">current</span>}
                  {v.destroyed === true ? <span class="badge">destroyed</span> : v.deletedAt != null && <span class="badge">deleted</span>}
                </td>
                <td class="wrap">{v.createdBy}</td>
                <td>
                  <Time at={v.createdAt} />
                </td>
                <td>
                  {!v.current && v.destroyed !== true && v.deletedAt == null && (
                    <button type="button" onClick={() => void rollback(v.version)} disabled={action.busy} aria-label={`Roll back to version ${v.version}`}>
                      Roll back
                    </button>
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

/** A new version's value (and description); with `name` undefined, the new secret's name too. */
function ValueForm({ name, current, onDone }: { name?: string; current?: number | undefined; onDone: (version: number, name: string) => void }) {
  const { call } = useSession();
  const [newName, setNewName] = useState("");
  const [value, setValue] = useState("");
  const [description, setDescription] = useState("");
  const action = useAction();
  const submit = (e: Event): void => {
    e.preventDefault();
    const target = name ?? newName.trim();
    void action.run(async () => {
      const body = { value, ...(description !== "" && { description }), ...(current !== undefined && { ifVersion: current }) };
      const r = await call<{ version: number }>("PUT", secretPath(target), body);
      setValue("");
      onDone(r.version, target);
    });
  };
  return (
    <form class="card" onSubmit={submit}>
      {name === undefined && (
        <>
          <label for="secret-name">Name</label>
          <input id="secret-name" value={newName} placeholder="app/db/password" required autocomplete="off" spellcheck={false} onInput={(e) => setNewName((e.target as HTMLInputElement).value)} />
        </>
      )}
      <label for="secret-value">Value</label>
      <textarea id="secret-value" value={value} rows={3} required autocomplete="off" spellcheck={false} onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)} />
      <label for="secret-description">Description (optional)</label>
      <input id="secret-description" value={description} maxLength={1024} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
      <button type="submit" disabled={action.busy}>
        {name === undefined ? "Create secret" : "Save version"}
      </button>
      <ErrorNote error={action.error} />
    </form>
  );
}

export function NewSecretPage() {
  return (
    <section>
      <p>
        <a href={link("/secrets")}>← Secrets</a>
      </p>
      <h1>New secret</h1>
      <ValueForm current={0} onDone={(_v, name) => go(`/secret/${name}`)} />
    </section>
  );
}
