/**
 * The signed-in credential: held in memory and in this tab's sessionStorage (so a reload keeps
 * it, and closing the tab forgets it), never in a cookie, a URL or localStorage.
 */
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Self } from "./api.ts";

const KEY = "coffer.token";

export function savedToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined; // storage turned off: the credential lives in memory only
  }
}

export function saveToken(token: string): void {
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // memory only
  }
}

export function forgetToken(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing was saved
  }
}

/** What every page knows of the session. */
export interface Session {
  token: string;
  self: Self;
  /** calls the API with the session's credential */
  call: <T>(method: string, path: string, body?: unknown) => Promise<T>;
}

export const SessionContext = createContext<Session | undefined>(undefined);

/** The session of a signed-in page. */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (s === undefined) throw new Error("useSession outside a signed-in page");
  return s;
}
