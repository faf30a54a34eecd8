/**
 * The console's routes live in the URL's fragment (`#/secrets`, `#/secret/app/db`): the server
 * serves one page, and a fragment is never sent to it. Secret names are in routes; values never.
 */
import { useEffect, useState } from "preact/hooks";

/** The current route: the fragment without its `#`, `/` when empty. */
export function currentRoute(): string {
  const h = location.hash.replace(/^#/, "");
  return h === "" ? "/" : h;
}

/** Re-renders on each change of the fragment; returns the route. */
export function useRoute(): string {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const on = (): void => setRoute(currentRoute());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** `href` of a route. */
export const link = (route: string): string => `#${route}`;

/** Goes to `route`. */
export function go(route: string): void {
  location.hash = route;
}
