import { CofferError } from "../../errors.ts";
import { readPassphraseFile } from "../../identity/identity.ts";
import { backupStore, restoreBackup, BACKUP_SCRYPT_LOG_N } from "../../store/backup.ts";
import { resolvePaths } from "../../core/paths.ts";
import type { Command, Context } from "../command.ts";
import { confirm, promptHidden, promptTwice } from "../io.ts";
import { oneArg, printJson, stringFlag, withStore } from "../open.ts";

export const backup: Command = {
  name: "backup",
  usage: "--out FILE (--passphrase-file F | --prompt | --to RECIPIENT) [--no-identity] [--weak-passphrase] [--force] [--json]",
  details: [
    "The backup holds every secret and version (still encrypted), members, grants, trusted cards,",
    "export and import records, the audit chain and, unless --no-identity, your identity file as",
    "it is on disk. It is one ASCII-armored age file: with a passphrase (age scrypt, work factor",
    `2^${BACKUP_SCRYPT_LOG_N}) or to age recipients (\`age1…\` or a coffer card; --to again, or`,
    "comma-separated, for several). `age -d` opens it like any age file. A passphrase must have at",
    "least 12 characters (--weak-passphrase accepts a shorter one). The backup is signed with your",
    "identity, as bundles are, and carries the audit chain's signed head.",
    "After writing, coffer reads the file back and checks it: it decrypts it again (passphrase, or",
    "your own recipient), checks the store with SQLite's integrity check and verifies the audit chain.",
    "A backup to someone else's recipient can only be checked as a well-formed age file here.",
    "The file is created 0600 and an existing file is not replaced unless --force is given.",
    "Careful: a backup with your identity in it is your secret key. Keep it, or its passphrase, safe;",
    "give --no-identity when backing up to another person's recipient.",
  ].join("\n"),
  examples: [
    "coffer backup --out coffer-$(date +%F).backup --prompt",
    "coffer backup --out /mnt/usb/coffer.backup --passphrase-file ~/.backup-pass",
    "coffer backup --out coffer.backup --to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    "coffer backup --out coffer.backup --to \"$(cat lead.card)\" --no-identity",
  ],
  flags: {
    out: { type: "string", short: "o", arg: "FILE", help: "the backup file to write (0600)" },
    "passphrase-file": { type: "string", arg: "F", help: "encrypt with the passphrase in file F (must be 0600)" },
    prompt: { type: "boolean", help: "encrypt with a passphrase asked twice on the terminal (no echo)" },
    to: { type: "string", multiple: true, arg: "RECIPIENT", help: "encrypt to an age recipient or coffer card (repeatable)" },
    "no-identity": { type: "boolean", help: "leave your identity (secret key) out of the backup" },
    "weak-passphrase": { type: "boolean", help: "accept a passphrase shorter than 12 characters" },
    force: { type: "boolean", help: "replace FILE if it exists" },
    json: { type: "boolean", help: "print the result as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "backup takes no arguments; name the file with --out FILE");
    const out = ctx.flags.out;
    if (typeof out !== "string" || out === "") throw new CofferError("E_USAGE", "missing --out FILE; see `coffer backup --help`");
    const passFile = ctx.flags["passphrase-file"];
    const to = ctx.flags.to;
    const modes = [typeof passFile === "string", ctx.flags.prompt === true, Array.isArray(to)].filter(Boolean).length;
    if (modes !== 1) {
      throw new CofferError("E_USAGE", "choose one of --passphrase-file F, --prompt or --to RECIPIENT; see `coffer backup --help`");
    }
    let passphrase = typeof passFile === "string" ? readPassphraseFile(passFile) : undefined;
    const recipients = Array.isArray(to) ? to.flatMap((t) => t.split(",")).map((s) => s.trim()).filter((s) => s !== "") : undefined;
    if (recipients !== undefined && recipients.length === 0) throw new CofferError("E_USAGE", "--to needs at least one recipient");

    const paths = resolvePaths({ env: ctx.env, ...(ctx.store !== undefined && { store: ctx.store }) });
    if (ctx.flags.prompt === true) passphrase = await promptTwice("backup passphrase");
    const { result, identity } = await withStore(ctx, async (store, identity) => ({
      identity,
      result: await backupStore(store, {
        out,
        ...(passphrase !== undefined && { passphrase }),
        ...(recipients !== undefined && { recipients }),
        identityFile: ctx.flags["no-identity"] === true ? null : paths.identity,
        identity,
        force: ctx.flags.force === true,
        weakPassphrase: ctx.flags["weak-passphrase"] === true,
        progress: (m) => ctx.say(m),
      }),
    }));
    const foreign = result.recipients !== undefined && !result.recipients.includes(identity.recipient);
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(
      `wrote ${result.file}: ${result.secrets} secrets, ${result.versions} versions, ${result.auditRecords} audit records, ` +
        (result.identity ? "your identity" : "no identity"),
    );
    ctx.say(
      result.to === "passphrase"
        ? `encrypted with a passphrase (age scrypt, work factor 2^${result.logN})`
        : `encrypted to ${result.recipients!.join(", ")}`,
    );
    if (result.verified === "decrypted") {
      ctx.say("checked: decrypted it again; the store passes SQLite's integrity check and its audit chain verifies");
    } else {
      ctx.say(
        `could not decrypt it here (it is not encrypted to your own key ${identity.recipient}): ` +
          "checked only that it is a well-formed age file; its recipient should check it with `coffer restore`",
      );
    }
    if (foreign && result.identity) {
      ctx.say("warning: the backup holds your identity (your secret key): whoever holds a recipient's key can use it; --no-identity leaves it out");
    }
    ctx.say(`restore it with: coffer restore ${result.file}`);
  },
};

export const restore: Command = {
  name: "restore",
  usage: "FILE [--passphrase-file F | --prompt | --identity FILE] [--from FINGERPRINT] [--unsigned] [--yes] [--json]",
  details: [
    "A passphrase backup asks for its passphrase on the terminal (or reads --passphrase-file);",
    "a recipient backup is opened with --identity FILE, or with your identity file.",
    "The backup is decrypted as it streams into a private temp file beside the store (any size)",
    "and checked completely (signature, SQLite integrity, audit chain, identity) before anything",
    "is swapped in; a wrong passphrase or a damaged file changes nothing and leaves nothing behind.",
    "The signature must be that of the identity that decrypts the backup (for a passphrase backup,",
    "of your identity when you have one), or of the card whose fingerprint --from gives (a backup",
    "someone else made for you). A backup made before coffer signed backups restores only with",
    "--unsigned: anyone who has your public card can make an unsigned one.",
    "The identity in the backup is written where coffer keeps it when there is none; an existing",
    "identity must be the same key, else the restore is refused. When the backup holds no identity,",
    "the existing one is used, or the --identity FILE given is copied there.",
    "An existing store is replaced only after you confirm on the terminal, or with --yes. Stop other",
    "coffer processes using that store first. The store is written atomically, an older store",
    "schema is migrated, the audit chain is verified and a `restore` record is appended.",
  ].join("\n"),
  examples: [
    "coffer restore coffer-2026-11-23.backup",
    "coffer restore /mnt/usb/coffer.backup --passphrase-file ~/.backup-pass --yes",
    "coffer restore coffer.backup --identity ~/keys/coffer-identity",
    "coffer restore lead-made.backup --from JPKBLZOOCWW2ZE77",
  ],
  flags: {
    "passphrase-file": { type: "string", arg: "F", help: "the backup's passphrase is in file F (must be 0600)" },
    prompt: { type: "boolean", help: "ask the backup's passphrase on the terminal (the default for a passphrase backup)" },
    identity: { type: "string", arg: "FILE", help: "the age identity file that opens a recipient backup" },
    from: { type: "string", arg: "FP", help: "the backup must be signed by the card with this fingerprint" },
    unsigned: { type: "boolean", help: "restore a backup made before coffer signed backups (with a warning)" },
    yes: { type: "boolean", short: "y", help: "replace an existing store without asking" },
    json: { type: "boolean", help: "print the result as JSON" },
  },
  async run(ctx: Context) {
    const file = oneArg(ctx, "FILE", "restore FILE [flags]");
    const passFile = ctx.flags["passphrase-file"];
    if (typeof passFile === "string" && ctx.flags.prompt === true) {
      throw new CofferError("E_USAGE", "give either --passphrase-file F or --prompt, not both");
    }
    const passphrase = typeof passFile === "string" ? readPassphraseFile(passFile) : () => promptHidden(`passphrase for ${file}: `);
    const identityFile = stringFlag(ctx, "identity");
    const result = await restoreBackup({
      env: ctx.env,
      ...(ctx.store !== undefined && { store: ctx.store }),
      file,
      passphrase,
      ...(identityFile !== undefined && { identityFile }),
      ...(typeof ctx.flags.from === "string" && { from: ctx.flags.from }),
      allowUnsigned: ctx.flags.unsigned === true,
      warn: (m) => ctx.say(`warning: ${m}`),
      identityPassphrase: () => promptHidden("passphrase for the identity: "),
      replace: ctx.flags.yes === true
        ? true
        : (info) =>
            confirm(
              `replace the store at ${info.store} (${info.existingSecrets ?? "unreadable, ?"} secrets) ` +
                `with the backup of ${info.backupCreated} (${info.backupSecrets} secrets)?`,
              "--yes",
            ),
      progress: (m) => ctx.say(m),
    });
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(
      `restored ${result.store}${result.replaced ? " (replacing the store that was there)" : ""}: ` +
        `${result.secrets} secrets, ${result.versions} versions, from the backup of ${result.backupCreated}`,
    );
    if (result.schemaFrom !== result.schema) ctx.say(`migrated the store from schema ${result.schemaFrom} to ${result.schema}`);
    ctx.say(`audit chain intact: ${result.auditRecords} records verify (the last one records this restore)`);
    if (result.signedBy !== null) ctx.say(`signed by "${result.signedBy.name}" (fingerprint ${result.signedBy.fingerprint})`);
    ctx.say(
      result.identityAction === "written"
        ? `wrote the identity from the backup to ${result.identityPath}`
        : result.identityAction === "adopted"
          ? `copied the identity ${identityFile} to ${result.identityPath}`
          : result.backupHasIdentity
            ? `kept the identity at ${result.identityPath} (the same key as the backup's)`
            : `opened the store with the identity at ${result.identityPath}`,
    );
  },
};
