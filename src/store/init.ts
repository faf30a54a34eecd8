/** `coffer init` as a library call: the identity (created, adopted or reused) and an empty store. */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { CofferError } from "../errors.ts";
import { cardOf, createIdentityFile, loadIdentity, type Identity, type PassphraseSource } from "../identity/identity.ts";
import { cardFingerprint } from "../identity/card.ts";
import { assertSecureParents, ensurePrivateDir } from "../core/fs-secure.ts";
import { homeOf, resolvePaths, type PathOptions } from "../core/paths.ts";
import { createStore } from "./store.ts";
import { headsDirFor } from "./head.ts";

/** Options of {@link initCoffer}. */
export interface InitOptions extends PathOptions {
  /** the identity's name (default: the login name) */
  name?: string;
  /** the text of an existing age identity file to adopt */
  adopt?: string;
  /** protect a new identity file with this passphrase (age scrypt) */
  newPassphrase?: string;
  /** the passphrase of an existing encrypted identity */
  passphrase?: PassphraseSource;
  /** scrypt work factor for a new passphrase (default 18) */
  logN?: number;
}

/** What {@link initCoffer} made. */
export interface InitResult {
  identityPath: string;
  storePath: string;
  /** false when an existing identity was reused */
  createdIdentity: boolean;
  recipient: string;
  card: string;
  fingerprint: string;
}

/**
 * Creates the identity (unless one exists, which is then reused) and an empty store.
 * @throws CofferError E_CONFLICT when the store exists, or when asked to adopt a key while an
 *   identity exists
 */
export async function initCoffer(options: InitOptions = {}): Promise<InitResult> {
  const paths = resolvePaths(options);
  if (existsSync(paths.store)) {
    throw new CofferError("E_CONFLICT", `a store already exists at ${paths.store}; nothing to do (use --store for another one)`);
  }
  let identity: Identity;
  let createdIdentity = false;
  if (existsSync(paths.identity)) {
    if (options.adopt !== undefined || options.newPassphrase !== undefined || options.name !== undefined) {
      throw new CofferError(
        "E_CONFLICT",
        `an identity already exists at ${paths.identity}; --identity, --name and --passphrase only apply to a new one`,
      );
    }
    identity = await loadIdentity(paths.identity, options);
  } else {
    ensurePrivateDir(dirname(paths.identity));
    assertSecureParents(paths.identity, "identity file", homeOf(options.env));
    // options.passphrase opens an existing identity; a new one is protected with newPassphrase.
    const { passphrase: _existing, newPassphrase, ...rest } = options;
    identity = await createIdentityFile({
      ...rest, path: paths.identity, ...(newPassphrase !== undefined && { passphrase: newPassphrase }),
    });
    createdIdentity = true;
  }
  await createStore(paths.store, identity, { ...options, headsDir: headsDirFor(paths.identity) });
  const card = cardOf(identity);
  return {
    identityPath: paths.identity, storePath: paths.store, createdIdentity,
    recipient: identity.recipient, card, fingerprint: cardFingerprint(card),
  };
}
