/**
 * The coffer web console (docs/design.md §11): sign in with an API token or a JWT, then manage
 * the server's secrets, tokens, roles, audit log and runbooks over the same API as the CLI.
 */
import { render } from "preact";
import { useMemo, useState } from "preact/hooks";
import { ApiError, call, type Self } from "./api.ts";
import { Layout } from "./layout.tsx";
import { SignIn } from "./pages/sign-in.tsx";
import { forgetToken, savedToken, saveToken, SessionContext, type Session } from "./session.ts";
import { useLoad } from "./ui.tsx";

function App() {
  const [token, setToken] = useState<string | undefined>(savedToken());
  const [self, setSelf] = useState<Self | undefined>(undefined);
  const [ended, setEnded] = useState("");
  // A token kept from earlier in this tab is checked again before any page shows.
  const resumed = useLoad(async () => {
    if (token === undefined || self !== undefined) return undefined;
    return call<Self>(token, "GET", "/v1/auth/self").catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 401) forgetToken();
      throw err;
    });
  }, [token]);
  const signOut = (why = ""): void => {
    forgetToken();
    setToken(undefined);
    setSelf(undefined);
    setEnded(why);
  };
  const who = self ?? resumed.data;
  const session = useMemo<Session | undefined>(
    () => {
      if (token === undefined || who === undefined) return undefined;
      // A credential that expired or was revoked ends the session: back to sign-in, saying why.
      const authed = async <T,>(method: string, path: string, body?: unknown): Promise<T> => {
        try {
          return await call<T>(token, method, path, body);
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) signOut(`Signed out: ${err.message}`);
          throw err;
        }
      };
      return { token, self: who, call: authed };
    },
    [token, who],
  );
  if (session === undefined) {
    if (token !== undefined && resumed.loading) return <p class="muted">Signing in…</p>;
    return (
      <SignIn
        notice={ended !== "" ? ended : resumed.error instanceof Error ? `Signed out: ${resumed.error.message}` : ""}
        onSignedIn={(t, s) => {
          setEnded("");
          saveToken(t);
          setToken(t);
          setSelf(s);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Layout onSignOut={() => signOut()} />
    </SessionContext.Provider>
  );
}

const root = document.getElementById("app");
if (root !== null) {
  root.textContent = "";
  render(<App />, root);
}
