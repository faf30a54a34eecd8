/** The sign-in page: one API token (or JWT), checked with `GET /v1/auth/self`. */
import { useState } from "preact/hooks";
import { call, type Self } from "../api.ts";
import { ErrorNote, useAction } from "../ui.tsx";

/** `notice`: why the last session ended (its credential expired or was revoked), or "". */
export function SignIn({ notice, onSignedIn }: { notice: string; onSignedIn: (token: string, self: Self) => void }) {
  const [token, setToken] = useState("");
  const action = useAction();
  const submit = (e: Event): void => {
    e.preventDefault();
    const t = token.trim();
    void action.run(async () => {
      const self = await call<Self>(t, "GET", "/v1/auth/self");
      setToken("");
      onSignedIn(t, self);
    });
  };
  return (
    <main class="sign-in">
      <h1>coffer</h1>
      {notice !== "" && action.error === undefined && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit}>
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="cof_… or a JWT"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit" disabled={action.busy || token.trim() === ""}>
          Sign in
        </button>
        <ErrorNote error={action.error} />
      </form>
      <p class="muted">The token stays in this browser tab only; closing the tab or signing out forgets it.</p>
    </main>
  );
}
