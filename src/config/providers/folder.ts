/** The `folder` provider's grammar: `{ type: folder, dir: /abs }`, `--provider folder:/abs`. */
import type { ProviderGrammar } from "./grammar.ts";

export interface FolderSpec {
  type: "folder";
  dir: string;
}

export const folderGrammar: ProviderGrammar<FolderSpec> = {
  type: "folder",
  schema: {
    title: "Folder",
    type: "object",
    additionalProperties: false,
    required: ["type", "dir"],
    properties: {
      type: { const: "folder", description: "One file per secret in a directory." },
      dir: { $ref: "#/$defs/absolutePath", description: "The directory, an absolute path.", "x-needs": "an absolute directory path" },
    },
  },
  path: "secret-name",
  cliForm: "folder:/absolute/dir",
  fromCli: (dir) => (dir.startsWith("/") ? { ok: { type: "folder", dir } } : { rule: "folder: needs an absolute directory, e.g. folder:/etc/secrets" }),
  spec: (s) => ({ type: "folder", dir: s["dir"] as string }),
};
