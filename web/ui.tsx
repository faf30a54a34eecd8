/**
 * The console's small shared pieces: loading data, showing an error, times, a confirm step.
 * Everything is rendered by Preact as text: no page builds HTML from data.
 */
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError } from "./api.ts";

/** The state of data loaded for a page. */
export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads `fn()` when `deps` change (and on reload()); a late answer of an old load is dropped. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ data, error: undefined, loading: false }),
      (error: unknown) => live && setState({ data: undefined, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** An error as one line (and the server's list of problems, when it sent one). */
export function ErrorNote({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  const message = error instanceof Error ? error.message : String(error);
  const problems = error instanceof ApiError ? error.problems : [];
  const code = error instanceof ApiError && error.status !== 0 ? ` (${error.status === 403 ? "not allowed" : error.code})` : "";
  return (
    <div class="error" role="alert">
      <p>
        {message}
        {code}
      </p>
      {problems.length > 1 && (
        <ul>
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A page's data, its loading state or its error. */
export function Show<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (loaded.error !== undefined) return <ErrorNote error={loaded.error} />;
  if (loaded.data === undefined) return <p class="muted" aria-busy="true">Loading…</p>;
  return <>{children(loaded.data)}</>;
}

/** A time in the reader's zone, with the exact UTC value as its datetime. */
export function Time({ at }: { at: string | null | undefined }) {
  if (at === null || at === undefined) return <span class="muted">never</span>;
  const d = new Date(at);
  return (
    <time dateTime={at} title={at}>
      {Number.isNaN(d.getTime()) ? at : d.toLocaleString()}
    </time>
  );
}

/**
 * A button that asks once more before `onConfirm`: the first press shows "`question`" with
 * the confirming button and Cancel.
 */
export function ConfirmButton({ label, question, confirm, onConfirm, disabled }: { label: string; question: string; confirm: string; onConfirm: () => void; disabled?: boolean }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" class="danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span class="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button type="button" class="danger" onClick={() => { setAsking(false); onConfirm(); }}>
        {confirm}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/**
 * Runs an action of a form: its error is kept to be shown, and `busy` is set while it runs so
 * its button can be disabled.
 */
export function useAction(): { busy: boolean; error: unknown; run: (fn: () => Promise<void>) => Promise<void>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = useCallback(async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}

/**
 * A table in a horizontally scrolling box (so a narrow screen never scrolls the page), with a
 * header row; a header given as "" is an unlabelled actions column, named for screen readers.
 */
export function Table({ head, class: className, children }: { head: string[]; class?: string; children: ComponentChildren }) {
  return (
    <div class="scroll">
      <table class={className}>
        <thead>
          <tr>
            {head.map((h, i) => (
              <th key={i} scope="col">
                {h === "" ? <span class="sr-only">Actions</span> : h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
