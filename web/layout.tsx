/** The signed-in frame: the navigation, who is signed in, Sign out, and the page of the route. */
import { link, useRoute } from "./router.ts";
import { useSession } from "./session.ts";
import { AuditPage } from "./pages/audit.tsx";
import { ApprovalsPage } from "./pages/approvals.tsx";
import { ExecutionPage } from "./pages/execution.tsx";
import { RolesPage, RolePage } from "./pages/roles.tsx";
import { RunbookPage, RunbooksPage } from "./pages/runbooks.tsx";
import { NewSecretPage, SecretPage } from "./pages/secret.tsx";
import { SecretsPage } from "./pages/secrets.tsx";
import { TokensPage } from "./pages/tokens.tsx";
import { Time } from "./ui.tsx";

const SECTIONS = [
  ["/secrets", "Secrets"],
  ["/tokens", "Tokens"],
  ["/roles", "Roles"],
  ["/audit", "Audit"],
  ["/runbooks", "Runbooks"],
  ["/approvals", "Approvals"],
] as const;

/** The page for a route; `/` and an unknown route show the secrets. */
function page(route: string) {
  const after = (prefix: string): string | undefined => (route.startsWith(prefix) ? decodeURIComponent(route.slice(prefix.length)) : undefined);
  let arg: string | undefined;
  if ((arg = after("/secret/")) !== undefined) return <SecretPage key={arg} name={arg} />;
  if (route === "/new-secret") return <NewSecretPage />;
  if (route === "/tokens") return <TokensPage />;
  if (route === "/roles") return <RolesPage />;
  if ((arg = after("/role/")) !== undefined) return <RolePage key={arg} name={arg} />;
  if (route === "/new-role") return <RolePage key="" name="" />;
  if (route.startsWith("/audit")) return <AuditPage />;
  if (route === "/runbooks") return <RunbooksPage />;
  if ((arg = after("/runbook/")) !== undefined) return <RunbookPage key={arg} name={arg} />;
  if ((arg = after("/execution/")) !== undefined) return <ExecutionPage key={arg} id={arg} />;
  if (route === "/approvals") return <ApprovalsPage />;
  return <SecretsPage />;
}

function section(route: string): string {
  if (route.startsWith("/secret") || route === "/new-secret" || route === "/") return "/secrets";
  if (route.startsWith("/role") || route === "/new-role") return "/roles";
  if (route.startsWith("/runbook") || route.startsWith("/execution")) return "/runbooks";
  return SECTIONS.find(([r]) => route.startsWith(r))?.[0] ?? "/secrets";
}

export function Layout({ onSignOut }: { onSignOut: () => void }) {
  const route = useRoute();
  const { self } = useSession();
  const current = section(route);
  return (
    <>
      <header>
        <a class="brand" href={link("/secrets")}>
          coffer
        </a>
        <nav aria-label="Sections">
          {SECTIONS.map(([r, label]) => (
            <a key={r} href={link(r)} aria-current={current === r ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <div class="who">
          <span title={`roles: ${self.roles.join(", ") || "none"}`}>{self.subject}</span>
          {self.expiresAt !== null && (
            <span class="muted">
              {" "}
              until <Time at={self.expiresAt} />
            </span>
          )}
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main>{page(route)}</main>
    </>
  );
}
