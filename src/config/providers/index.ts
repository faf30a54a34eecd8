/**
 * The provider grammars (docs/design.md §7): a new provider type is its grammar file here, its
 * runtime file in `src/providers/`, and one line in each registry.
 */
import { CofferError } from "../../errors.ts";
import { show } from "../yaml-checker.ts";
import { envGrammar, type EnvSpec } from "./env.ts";
import { folderGrammar, type FolderSpec } from "./folder.ts";
import type { ProviderGrammar } from "./grammar.ts";
import { serverGrammar, type ServerSpec } from "./server.ts";
import { storeGrammar, type StoreSpec } from "./store.ts";
import { vaultGrammar, type VaultSpec } from "./vault.ts";

/** How a provider is configured (a `providers:` entry, an agent backend, `--provider`). */
export type ProviderSpec = StoreSpec | FolderSpec | EnvSpec | VaultSpec | ServerSpec;

/** Every provider type's grammar, in the order messages list them. */
export const PROVIDER_GRAMMARS: readonly ProviderGrammar[] = [storeGrammar, folderGrammar, envGrammar, vaultGrammar, serverGrammar];

/** The `x-format` checks of every provider's settings. */
export const PROVIDER_FORMATS = Object.assign({}, ...PROVIDER_GRAMMARS.map((g) => g.formats ?? {}));

/** The grammar of `type`. */
export function grammarOf(type: string): ProviderGrammar | undefined {
  return PROVIDER_GRAMMARS.find((g) => g.type === type);
}

/**
 * Parses `--provider SPEC`: `TYPE` for types without settings, else `TYPE:SETTINGS` (each
 * type's `cliForm`); tokens come from the environment as for `.coffer.yml`.
 * @throws CofferError E_USAGE naming the accepted forms
 */
export function parseProviderSpec(text: string): ProviderSpec {
  const colon = text.indexOf(":");
  const g = grammarOf(colon < 0 ? text : text.slice(0, colon));
  const r = g === undefined ? undefined : g.fromCli === undefined ? (colon < 0 ? { ok: g.spec({}) } : undefined) : colon < 0 ? undefined : g.fromCli(text.slice(colon + 1));
  if (r !== undefined && "ok" in r) return r.ok as ProviderSpec;
  const forms = PROVIDER_GRAMMARS.map((x) => x.cliForm);
  const rule = r?.rule ?? `use ${forms.slice(0, -1).join(", ")} or ${forms.at(-1)}`;
  throw new CofferError("E_USAGE", `invalid provider ${show(text)}: ${rule}`);
}
