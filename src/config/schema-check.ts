/**
 * The one config checker (docs/design.md §7): walks a parsed YAML document against a JSON Schema
 * and collects every problem as `file:line: rule`, thrown at once by {@link YamlChecker.throwIfAny}.
 * The schemas of `.coffer.yml`, `agent.yml` and the server config are the single source of their
 * structure (types, required keys, closed objects, patterns, enums, bounds); only the rules that
 * need the whole file stay as code beside each schema.
 *
 * The walker reads the subset of draft 2020-12 the schemas use: `type` (object, string, integer,
 * boolean, array), `properties`, `additionalProperties`, `propertyNames`, `required`, `pattern`,
 * `enum`, `not: { const }`, `not: {}` (a key named only to be refused), `minimum`, `maximum`,
 * `minLength`, `minItems`, `minProperties`, `items`, `uniqueItems`, `$ref` (to `#/$defs/…`), and
 * `oneOf` either discriminated by a `type` const (providers) or choosing the branch of the node's
 * kind. A schema without `type` hands the node itself to the code (the value of a map entry that
 * code checks later, such as the chosen agent service).
 *
 * Messages are the schema's too, from `x-` keywords that {@link publicSchema} strips before the
 * schema is printed. Templates fill in `{where}` (how the value is named), `{where:}` ("where: "
 * when there is a where), `{value}` (shown), `{pattern}`, `{rule}` (a format's), `{owner}` (where
 * without its last word) and `{n}` (a list item's number):
 * - `x-rule`: a value's problem; `x-format`: a named check of {@link Formats} giving the rule;
 * - `x-expect`: what a value must be ("must be …, got …"); `x-secret`: never show the value;
 * - `x-needs`: what a required key holds; `x-empty`: the problem of an empty list or map;
 * - `x-twice`: the problem of a repeated list item (uniqueItems);
 * - `x-item`: how an entry is named (a map's: `provider {key}`; a list's: `{where} rule {n}`);
 * - `x-sep`: between an object's name and its keys' names (default " "); `x-typed`: a
 *   discriminated oneOf names its settings with their type (`backend "v" (type vault) address`).
 */
import { isAlias, isMap, isScalar, isSeq } from "yaml";
import type { Pair, YAMLMap, YAMLSeq } from "yaml";
import type { Formats, Schema } from "../providers/grammar.ts";
import { show, YamlChecker } from "./yaml-checker.ts";

export type { Formats, Schema } from "../providers/grammar.ts";

/** The schema without coffer's `x-` keywords: what editors and `coffer config schema` see. */
export function publicSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(publicSchema);
  if (schema === null || typeof schema !== "object") return schema;
  return Object.fromEntries(Object.entries(schema).filter(([k]) => !k.startsWith("x-")).map(([k, v]) => [k, publicSchema(v)]));
}

/** Where one entry of a checked map or list was written. */
export interface EntryLines {
  /** the key's line (for a list item, the item's) */
  key: number;
  /** the value's line */
  value: number;
}

/** Walks YAML against a schema; the values it returns are plain data, their lines in {@link at}. */
export class SchemaChecker extends YamlChecker {
  #lines = new WeakMap<object, Map<string | number, EntryLines>>();
  #root: Schema = {};
  #formats: Formats = {};

  /** Uses `root` for `$ref`s and `formats` for `x-format`. */
  use(root: Schema, formats: Formats): this {
    this.#root = root;
    this.#formats = formats;
    return this;
  }

  /** Where `key` of a checked map or list was written; undefined when it was not. */
  at(container: object, key: string | number): EntryLines | undefined {
    return this.#lines.get(container)?.get(key);
  }

  /** Whether the document is empty (nothing, or only comments). */
  isEmpty(contents: unknown): boolean {
    return contents === null || contents === undefined || (isScalar(contents) && contents.value === null);
  }

  /** The keys written in a checked map, wrong ones included. */
  keysOf(container: object): string[] {
    return [...(this.#lines.get(container)?.keys() ?? [])].map(String);
  }

  /** The line of `key`'s value (`fallback` when it was not written). */
  lineOf(container: object, key: string | number, fallback = 1): number {
    return this.at(container, key)?.value ?? fallback;
  }

  /**
   * Checks `node` against `schema`.
   * @param where - how messages name the value (`provider "v" address`; "" for the top level)
   * @param line - the line to report when the node has none (its key's)
   * @returns the value as plain data (open maps as null-prototype objects), or undefined when the
   *   node itself is wrong (its problem noted); a map or list with wrong entries is returned
   *   without them
   */
  check(node: unknown, schema: Schema, where: string, line: number): unknown {
    if (typeof schema["$ref"] === "string") return this.check(node, this.def(schema["$ref"]), where, line);
    const n = this.deref(node, line);
    if (n === undefined && node !== null && node !== undefined) return undefined; // alias problem noted
    const at = n === null || n === undefined ? line : this.line(n);
    const name = where === "" ? "the top level" : where;
    if (schema["oneOf"] !== undefined && schema["type"] === undefined) return this.#oneOf(n, schema, where, at, line);
    if (isRefused(schema)) {
      this.problem(at, render(schema["x-rule"] ?? "{where} is not allowed here", schema, where, "", ""));
      return undefined;
    }
    const got = (): string => {
      const hint = isScalar(n) && n.value !== null && typeof n.source === "string" && typeof n.value !== "string" ? ` (quote it: "${n.source}")` : "";
      return `${this.kind(n)}${schema["type"] === "string" ? hint : ""}`;
    };
    const wrong = (expect: string): undefined => {
      // x-secret: the value is never shown (a secret's text), only whether it needs quotes.
      const tail = schema["x-secret"] === true ? (isScalar(n) && n.value !== null ? " (quote it)" : "") : `, got ${got()}`;
      this.problem(at, `${name} must be ${schema["x-expect"] ?? expect}${tail}`);
      return undefined;
    };
    const v = isScalar(n) ? n.value : undefined;
    switch (schema["type"]) {
      case "object":
        return isMap(n) ? this.#object(n, schema, where, at, line) : wrong("a map");
      case "array":
        return isSeq(n) ? this.#array(n, schema, where, at, line) : wrong("a list");
      case "boolean":
        return typeof v === "boolean" ? v : wrong("true or false");
      case "integer": {
        const { minimum: min, maximum: max } = schema;
        if (typeof v === "number" && Number.isSafeInteger(v) && (min === undefined || v >= min) && (max === undefined || v <= max)) return v;
        return wrong(min === 1 && max === undefined ? "a positive integer" : `a whole number from ${min ?? "any"} to ${max ?? "any"}`);
      }
      case "string": {
        const format = schema["x-format"] === undefined ? undefined : this.#formats[schema["x-format"]];
        const numberRule = typeof v === "number" && isScalar(n) ? format?.(n.source ?? String(v), true) : undefined;
        if (numberRule !== undefined) {
          this.problem(at, `${name} ${numberRule}`);
          return undefined;
        }
        if (typeof v !== "string") return wrong("a string");
        return this.#string(v, schema, where, at);
      }
      default:
        return isScalar(n) ? n.value : n;
    }
  }

  /** The line of a value, following aliases without noting problems (check() notes them). */
  #valueLine(node: unknown, keyLine: number): number {
    let n = node;
    for (let i = 0; i < 16 && isAlias(n); i++) n = this.resolveAlias(n);
    return n === null || n === undefined || isAlias(n) ? keyLine : this.line(n);
  }

  /** The root schema's `$defs` entry `ref` (`name` or `#/$defs/name`). */
  def(ref: string): Schema {
    const def = this.#root["$defs"]?.[ref.replace("#/$defs/", "")];
    if (def === undefined) throw new Error(`schema: no ${ref}`);
    return def;
  }

  #string(v: string, schema: Schema, where: string, at: number): string | undefined {
    const broken = this.textRule(v, schema);
    if (broken === undefined) return v;
    this.problem(at, render(broken.template, schema, where, show(v), broken.rule));
    return undefined;
  }

  /**
   * The rule a string breaks (minLength, enum, not-const, pattern or `x-format`), as the message
   * template and the format's rule; undefined when it is fine.
   */
  textRule(v: string, schema: Schema): { template: string; rule: string } | undefined {
    const own = (fallback: string, rule = ""): { template: string; rule: string } => ({ template: schema["x-rule"] ?? fallback, rule });
    if (schema["minLength"] !== undefined && v.length < schema["minLength"]) return { template: "{where} must not be empty", rule: "" };
    if (schema["enum"] !== undefined && !schema["enum"].includes(v)) return own(`{where} must be one of ${schema["enum"].join(", ")}, got {value}`);
    if (schema["not"]?.["const"] === v) return { template: schema["not"]["x-rule"] ?? "{where} {value} is not allowed", rule: "" };
    const format = schema["x-format"] === undefined ? undefined : this.#formats[schema["x-format"]];
    // A format is the exact check (the pattern is its approximation for editors).
    if (format === undefined && schema["pattern"] !== undefined && !new RegExp(schema["pattern"], "u").test(v)) return own("{where} {value} must match {pattern}");
    const broken = format?.(v);
    return broken === undefined ? undefined : own("{where} {value} {rule}", broken);
  }

  #object(map: YAMLMap, schema: Schema, where: string, at: number, keyLine: number, typed = where): Record<string, unknown> {
    // Open maps (names as keys) have no prototype; closed objects hold only the schema's keys.
    const out = (schema["additionalProperties"] === false ? {} : Object.create(null)) as Record<string, unknown>;
    const lines = new Map<string, EntryLines>();
    this.#lines.set(out, lines);
    const props: Record<string, Schema> = schema["properties"] ?? {};
    const extra: Schema | false | undefined = schema["additionalProperties"];
    const entries = this.entries(map, typed === "" ? "the top level" : typed);
    if (entries.length === 0 && schema["minProperties"] > 0) this.problem(keyLine, render(schema["x-empty"], schema, where, "", ""));
    const sep: string = schema["x-sep"] ?? " ";
    const allowed = Object.keys(props).filter((k) => !isRefused(props[k]!));
    const unknown = (key: string): boolean => extra === false && !Object.hasOwn(props, key);
    for (const { key, line } of entries.filter((e) => unknown(e.key))) {
      this.problem(line, `unknown key ${show(key)} in ${typed === "" ? "the top level" : typed}; allowed: ${allowed.length > 0 ? allowed.join(", ") : "(none)"}`);
    }
    for (const { key, line, value } of entries) {
      const known = Object.hasOwn(props, key);
      if (unknown(key)) continue;
      lines.set(key, { key: line, value: this.#valueLine(value, line) });
      const names: Schema | undefined = schema["propertyNames"];
      if (!known && names !== undefined && this.#string(key, names["$ref"] === undefined ? names : this.def(names["$ref"]), "", line) === undefined) continue;
      const child: Schema = known ? props[key]! : extra === undefined || extra === false ? {} : extra;
      const item: string | undefined = schema["x-item"];
      const childWhere = known ? (where === "" ? key : `${where}${sep}${key}`) : item === undefined ? key : item.replace("{key}", show(key));
      const v = this.check(value, child, childWhere, line);
      if (v !== undefined) out[key] = v;
    }
    for (const key of schema["required"] ?? []) {
      if (lines.has(key)) continue;
      const needs = props[key]?.["x-needs"] ?? "";
      this.problem(keyLine, where === "" ? `missing ${key}: ${needs}` : `${typed} needs ${key}: ${needs}`);
    }
    return out;
  }

  #array(seq: YAMLSeq, schema: Schema, where: string, at: number, keyLine: number): unknown[] {
    const out: unknown[] = [];
    const lines = new Map<number, EntryLines>();
    this.#lines.set(out, lines);
    if (seq.items.length === 0 && schema["minItems"] > 0) this.problem(keyLine, render(schema["x-empty"], schema, where, "", ""));
    seq.items.forEach((item, i) => {
      this.meter.steps++;
      const line = this.#valueLine(item, at);
      // x-item names an item: {where} the list, {owner} what holds the list, {n} the item's number.
      const name: string = (schema["x-item"] ?? "{where}")
        .replace("{where}", where)
        .replace("{owner}", where.slice(0, Math.max(0, where.lastIndexOf(" "))))
        .replace("{n}", String(i + 1));
      const v = this.check(item, schema["items"] ?? {}, name, line);
      if (v === undefined) return;
      if (schema["uniqueItems"] === true && out.includes(v)) {
        this.problem(line, render(schema["x-twice"] ?? "{where} {value} is listed twice", schema, name, show(String(v)), ""));
        return;
      }
      lines.set(out.length, { key: line, value: line });
      out.push(v);
    });
    return out;
  }

  #oneOf(n: unknown, schema: Schema, where: string, at: number, keyLine: number): unknown {
    const branches: Schema[] = schema["oneOf"].map((b: Schema) => (typeof b["$ref"] === "string" ? this.def(b["$ref"]) : b));
    const types = branches.map((b) => b["properties"]?.["type"]?.["const"]);
    if (types.every((t) => typeof t === "string")) {
      // A map discriminated by its `type`: the branch of that type checks the rest.
      if (!isMap(n)) return this.check(n, { type: "object" }, where, at);
      const entry = (n.items as Pair<unknown, unknown>[]).find((p) => isScalar(p.key) && p.key.value === "type");
      if (entry === undefined) {
        this.problem(keyLine, `${where} needs type: one of ${types.join(", ")}`);
        return undefined;
      }
      const typeLine = this.#valueLine(entry.value, this.line(entry.key));
      const type = this.check(entry.value, { type: "string" }, `${where} type`, typeLine) as string | undefined;
      if (type === undefined) return undefined;
      const i = types.indexOf(type);
      if (i < 0) {
        this.problem(typeLine, `${where} type ${show(String(type))} is unknown; types: ${types.join(", ")}`);
        return undefined;
      }
      const before = this.problems.length;
      // x-typed: the settings' messages name the type too (agent.yml's backends).
      const typed = `${where} (type ${type})`;
      const out = this.#object(n, branches[i]!, schema["x-typed"] === true ? typed : where, at, keyLine, typed);
      return this.problems.length > before ? undefined : out;
    }
    // Otherwise the branch of the node's kind.
    const v = isScalar(n) ? n.value : undefined;
    const kind = isMap(n) ? "object" : isSeq(n) ? "array" : typeof v === "number" ? "integer" : typeof v;
    const branch = branches.find((b) => b["type"] === kind);
    if (branch !== undefined) return this.check(n, branch, where, at);
    return this.check(n, { type: "string", "x-expect": schema["x-expect"] }, where, at);
  }
}

/** `not: {}`: a key the schema names only to refuse it with its own message (mode in env:). */
function isRefused(schema: Schema): boolean {
  const not = schema["not"];
  return not !== undefined && typeof not === "object" && Object.keys(not).length === 0;
}

/** Fills in a message template (see the module comment). */
export function render(template: string, schema: Schema, where: string, value: string, rule: string): string {
  return template
    .replace("{where:}", where === "" ? "" : `${where}: `)
    .replace("{where}", where)
    .replace("{value}", value)
    .replace("{pattern}", String(schema["pattern"]))
    .replace("{rule}", rule)
    .trim();
}
