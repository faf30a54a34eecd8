/**
 * The shape of a CLI command: flags, help text with an example, and a `run` that parses
 * nothing itself and calls library functions.
 */
/** A flag of a command (the `node:util` parseArgs shape plus help text). */
export interface Flag {
  type: "string" | "boolean";
  short?: string;
  /** may be given several times; the value is then an array of strings */
  multiple?: boolean;
  /** the placeholder shown in help, e.g. `N` for `--version N` */
  arg?: string;
  help: string;
  /**
   * What shell completion offers as the flag's value (`coffer completion`): secret names of the
   * local store, environment names of the project file, or the shell's own file completion.
   */
  complete?: Completes;
}

/** What a flag's value or a command's positional is, for shell completion. */
export type Completes = "secret" | "environment" | "file" | readonly string[];

export interface Context {
  /** positional arguments after the command words */
  args: string[];
  /** parsed flags, by long name: strings, booleans, or arrays for `multiple` flags */
  flags: Record<string, string | boolean | string[] | undefined>;
  io: { stdin: NodeJS.ReadableStream & { isTTY?: boolean }; stdout: { isTTY?: boolean } };
  env: NodeJS.ProcessEnv;
  /** the user's umask (coffer runs with 077; commands it starts get this one back) */
  umask: number;
  /** store path from the global `--store`, if given */
  store: string | undefined;
  /** prints a message on stderr (never data) */
  say(message: string): void;
  /** prints data on stdout */
  out(data: string | Uint8Array): void;
}

export interface Command {
  /** the words that name it, e.g. `audit verify` */
  name: string;
  /** the first line of its help, when it says more than main.ts's one-line summary in the command list */
  summary?: string;
  /** e.g. `NAME [VALUE] [flags]` */
  usage: string;
  /** more lines of help */
  details?: string;
  /** at least one example command line */
  examples: string[];
  flags: Record<string, Flag>;
  /** what shell completion offers for the positionals (see {@link Completes}) */
  completes?: Completes;
  /** allows `--` and everything after it as positionals */
  passthrough?: boolean;
  /** @returns the exit status (0 when nothing is returned) */
  run(ctx: Context): Promise<number | void>;
}
