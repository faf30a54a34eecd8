/**
 * The coffer web console (docs/design.md §11): sign in with an API token or a JWT, then manage
 * the server's secrets, tokens, roles, audit log and runbooks over the same API as the CLI.
 */
import { render } from "preact";
import { useMemo, useState } from "preact/hooks";
import { call, type Self } from "./api.ts";
import { Layout } from "./layout.tsx";
import { SignIn } from "./pages/sign-in.tsx";
import { forgetToken, savedToken, saveToken, SessionContext, type Session } from "./session.ts";
import { useLoad } from "./ui.tsx";

function App() {
  const [token, setToken] = useState<string | undefined>(savedToken());
  const [self, setSelf] = useState<Self | undefined>(undefined);
  // A token kept from earlier in this tab is checked again before any page shows.
  const resumed = useLoad(async () => (token !== undefined && self === undefined ? call<Self>(token, "GET", "/v1/auth/self") : undefined), [token]);
  const signOut = (): void => {
    forgetToken();
    setToken(undefined);
    setSelf(undefined);
  };
  const who = self ?? resumed.data;
  const session = useMemo<Session | undefined>(
    () => (token === undefined || who === undefined ? undefined : { token, self: who, call: (method, path, body) => call(token, method, path, body) }),
    [token, who],
  );
  if (session === undefined) {
    if (token !== undefined && resumed.loading) return <p class="muted">Signing in…</p>;
    return (
      <SignIn
        onSignedIn={(t, s) => {
          saveToken(t);
          setToken(t);
          setSelf(s);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Layout onSignOut={signOut} />
    </SessionContext.Provider>
  );
}

const root = document.getElementById("app");
if (root !== null) {
  root.textContent = "";
  render(<App />, root);
}
