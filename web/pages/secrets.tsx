/** The secrets the caller may list, as a tree by prefix, with a filter box. */
import { useState } from "preact/hooks";
import { link } from "../router.ts";
import { useSession } from "../session.ts";
import { Show, Time, useLoad } from "../ui.tsx";

/** A secret as `GET /v1/secrets` lists it (never its value). */
export interface SecretInfo {
  name: string;
  version: number;
  description: string | null;
  updatedAt: string;
  updatedBy: string;
}

interface Folder {
  folders: Map<string, Folder>;
  secrets: SecretInfo[];
}

/** The names as folders by their `/` segments. */
function tree(secrets: SecretInfo[]): Folder {
  const root: Folder = { folders: new Map(), secrets: [] };
  for (const s of secrets) {
    const parts = s.name.split("/");
    let f = root;
    for (const p of parts.slice(0, -1)) {
      let next = f.folders.get(p);
      if (next === undefined) f.folders.set(p, (next = { folders: new Map(), secrets: [] }));
      f = next;
    }
    f.secrets.push(s);
  }
  return root;
}

function FolderView({ folder }: { folder: Folder }) {
  return (
    <ul class="tree">
      {[...folder.folders].sort(([a], [b]) => a.localeCompare(b)).map(([name, f]) => (
        <li key={`d:${name}`}>
          <details open>
            <summary>{name}/</summary>
            <FolderView folder={f} />
          </details>
        </li>
      ))}
      {folder.secrets.map((s) => (
        <li key={s.name} class="secret">
          <a href={link(`/secret/${s.name}`)}>{s.name.split("/").at(-1)}</a>
          <span class="muted">
            {" "}
            v{s.version} · <Time at={s.updatedAt} />
            {s.description !== null && s.description !== "" && <> · {s.description}</>}
          </span>
        </li>
      ))}
    </ul>
  );
}

export function SecretsPage() {
  const { call } = useSession();
  const [filter, setFilter] = useState("");
  const loaded = useLoad(() => call<{ secrets: SecretInfo[] }>("GET", "/v1/secrets"), []);
  return (
    <section>
      <div class="title">
        <h1>Secrets</h1>
        <a class="button" href={link("/new-secret")}>
          New secret
        </a>
      </div>
      <label for="filter">Filter</label>
      <input id="filter" type="search" value={filter} placeholder="part of a name or description" onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      <Show loaded={loaded}>
        {({ secrets }) => {
          const f = filter.trim().toLowerCase();
          const shown = secrets
            .filter((s) => f === "" || s.name.toLowerCase().includes(f) || (s.description ?? "").toLowerCase().includes(f))
            .sort((a, b) => a.name.localeCompare(b.name));
          if (secrets.length === 0) return <p class="muted">No secrets you may list. Create one with New secret, or ask for a role that lists some.</p>;
          if (shown.length === 0) return <p class="muted">No secret matches “{filter}”.</p>;
          return <FolderView folder={tree(shown)} />;
        }}
      </Show>
    </section>
  );
}
