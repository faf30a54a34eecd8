/**
 * The YAML side of coffer's config files (`.coffer.yml`, the agent config, the server config):
 * parsing one document with line numbers, and a checker that walks the tree collecting every
 * problem as `file:line: rule`, then throws them all at once as one CofferError `E_CONFIG`.
 *
 * The schema walker (schema-check.ts) extends {@link YamlChecker}; the steps below it (aliases,
 * node kinds, map entries) live here.
 */
import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from "yaml";
import type { Alias, Document, Node as YamlNode, Pair, YAMLMap } from "yaml";
import { CofferError, problemList, show } from "../errors.ts";

export { show } from "../errors.ts";

/**
 * The options coffer parses YAML with. `uniqueKeys: false`: the yaml package's own duplicate-key
 * check compares each key with every earlier key of its map (a 0.8 MB file took 14 s), so
 * {@link parseYaml} finds duplicates itself in one pass.
 */
export const YAML_PARSE_OPTIONS = { prettyErrors: true, uniqueKeys: false } as const;

/** Counts the steps of coffer's own passes over a document, so tests can check they are linear. */
export interface WorkMeter {
  steps: number;
}

/** The most problems one message shows; the rest are counted. */
export const MAX_SHOWN_PROBLEMS = 50;

/** The most names a message lists; a longer list is cut (a message must not grow with the file). */
export const MAX_LISTED_NAMES = 20;

/**
 * Names for a message: `a, b, c`, `(none)`, or the first {@link MAX_LISTED_NAMES} and how many in all.
 */
export function nameList(names: Iterable<string>): string {
  const shown: string[] = [];
  let count = 0;
  for (const n of names) if (count++ < MAX_LISTED_NAMES) shown.push(n);
  if (count === 0) return "(none)";
  return count > MAX_LISTED_NAMES ? `${shown.join(", ")}, … (${count} in all)` : shown.join(", ");
}

/**
 * Parses one YAML document with line numbers. Duplicate keys are errors.
 * @param text - the file's text
 * @param file - the name messages show
 * @param meter - counts the steps of the duplicate-key pass (tests)
 * @returns the document and its line counter, for a {@link YamlChecker}
 * @throws CofferError E_CONFIG listing every YAML syntax problem as `file:line: YAML: rule`
 *   (a second document is "the file must hold one YAML document (no second ---)")
 */
export function parseYaml(text: string, file: string, meter?: WorkMeter): { doc: Document.Parsed; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...YAML_PARSE_OPTIONS, lineCounter: lines });
  const checker = new YamlChecker(file, doc, lines);
  for (const e of [...doc.errors, ...doc.warnings]) {
    const line = e.linePos?.[0].line ?? lines.linePos(e.pos[0]).line;
    const first = e.message.split("\n")[0] ?? e.message;
    const cut = first.search(/ at line \d+, column \d+:?$/);
    const rule = e.code === "MULTIPLE_DOCS" ? "the file must hold one YAML document (no second ---)" : cut >= 0 ? first.slice(0, cut) : first;
    checker.problem(line, `YAML: ${rule}`);
  }
  for (const key of duplicateKeys(doc, meter)) checker.problem(checker.line(key), "YAML: Map keys must be unique");
  checker.throwIfAny();
  return { doc, lines };
}

/**
 * The keys that repeat an earlier key of their map (the yaml package's rule: the same scalar
 * value), in one pass with a set per map.
 */
export function duplicateKeys(doc: Document.Parsed, meter?: WorkMeter): YamlNode[] {
  const out: YamlNode[] = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (meter !== undefined) meter.steps++;
        const k = pair.key;
        if (!isScalar(k)) continue;
        if (seen.has(k.value)) out.push(k);
        else seen.add(k.value);
      }
    },
  });
  return out;
}

/** How many nodes aliases may add to a document's walk beyond its own size (an expansion attack's bound). */
export const MIN_ALIAS_BUDGET = 10_000;

/**
 * Collects the problems of one YAML document with their lines and follows its aliases within a
 * budget; schema-check.ts's SchemaChecker walks it against a schema.
 */
export class YamlChecker {
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  /** each problem's 1-based line and rule (without the `file:line: ` prefix), in the order found */
  readonly problems: { line: number; rule: string }[] = [];

  /**
   * @param file - the name messages show
   * @param doc - the parsed document (see {@link parseYaml})
   * @param lines - its line counter
   */
  constructor(file: string, doc: Document.Parsed, lines: LineCounter) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
  }

  /** Notes a problem at `line`. */
  problem(line: number, rule: string): void {
    this.problems.push({ line, rule });
  }

  /**
   * Throws every problem noted so far, sorted by line, then `unlined` (problems outside the file,
   * such as an environment variable's), as one message, one problem a line.
   * @throws CofferError E_CONFIG: `file:line: rule` for one problem, else
   *   `file: N problems:` and `  file:line: rule` on each following line (the first
   *   {@link MAX_SHOWN_PROBLEMS}, then how many more)
   */
  throwIfAny(unlined: readonly string[] = []): void {
    if (this.problems.length === 0 && unlined.length === 0) return;
    // sort is stable: the problems of one line stay in the order they were found
    const sorted = [...this.problems].sort((a, b) => a.line - b.line);
    const items = sorted.slice(0, MAX_SHOWN_PROBLEMS).map((p) => `${this.file}:${p.line}: ${p.rule.replace(/\s*\n\s*/g, " ")}`);
    if (sorted.length > MAX_SHOWN_PROBLEMS) items.push(`… and ${sorted.length - MAX_SHOWN_PROBLEMS} more`);
    throw new CofferError("E_CONFIG", problemList(this.file, [...items, ...unlined], sorted.length + unlined.length));
  }

  /** The line a node starts on (1 when it has no position). */
  line(node: unknown): number {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range !== undefined ? this.lines.linePos(range[0]).line : 1;
  }

  /** Counts the steps of this checker's walk (tests check it is linear). */
  readonly meter: WorkMeter = { steps: 0 };
  #aliases: Map<Alias, YamlNode | undefined> | undefined;
  #sizes = new Map<YamlNode, number>();
  #counted = new Set<Alias>();
  #budget = 0;
  #overBudget = false;

  /**
   * The node an alias names: the last node with its anchor before it, as the yaml package
   * resolves it, from one pass over the document (`Alias.resolve` walks the whole document for
   * each alias, which made a file of many aliases quadratic).
   */
  resolveAlias(alias: Alias): YamlNode | undefined {
    if (this.#aliases === undefined) {
      const aliases = new Map<Alias, YamlNode | undefined>();
      const anchors = new Map<string, YamlNode>();
      let nodes = 0;
      visit(this.doc, {
        Node: (_key, node) => {
          nodes++;
          if (isAlias(node)) aliases.set(node, anchors.get(node.source));
          else if (node.anchor !== undefined) anchors.set(node.anchor, node);
        },
      });
      this.meter.steps += nodes;
      this.#aliases = aliases;
      this.#budget = Math.max(MIN_ALIAS_BUDGET, nodes);
    }
    return this.#aliases.get(alias);
  }

  /** Nodes in a subtree (aliases count one), memoised per node. */
  #size(node: YamlNode): number {
    const known = this.#sizes.get(node);
    if (known !== undefined) return known;
    let n = 0;
    visit(node, { Node: () => void n++ });
    this.meter.steps += n;
    this.#sizes.set(node, n);
    return n;
  }

  /** Follows aliases; undefined (with a problem) when one does not resolve or aliases expand too far. */
  deref(node: unknown, line: number): unknown {
    let n = node;
    for (let i = 0; i < 16 && isAlias(n); i++) {
      this.meter.steps++;
      const alias: Alias = n;
      const target = this.resolveAlias(alias);
      if (target === undefined) {
        this.problem(this.line(alias), `unknown alias *${alias.source}`);
        return undefined;
      }
      // Each alias of a collection makes the walk visit that collection again: bound the total,
      // so a 1 MiB file of aliases cannot make checking quadratic.
      if (isCollection(target) && !this.#counted.has(alias)) {
        this.#counted.add(alias);
        this.#budget -= this.#size(target);
        if (this.#budget < 0) {
          if (!this.#overBudget) {
            this.#overBudget = true;
            this.problem(this.line(alias), "aliases repeat too much of the file; write the entries out or use extends:");
          }
          return undefined;
        }
      }
      n = target;
    }
    if (isAlias(n)) {
      this.problem(line, "aliases nest too deeply");
      return undefined;
    }
    return n;
  }

  /** What a node is, for "must be a map, got …". */
  kind(node: unknown): string {
    if (node === null || node === undefined) return "nothing";
    if (isMap(node)) return "a map";
    if (isSeq(node)) return "a list";
    if (isScalar(node)) {
      const v = node.value;
      if (v === null) return "null";
      if (typeof v === "string") return `the string ${show(v)}`;
      return `${typeof v} ${String(v)}`;
    }
    return "an unsupported node";
  }

  /** The map's entries as key text, key line and value node; problems for odd keys. */
  entries(map: YAMLMap, where: string): { key: string; line: number; value: unknown }[] {
    const out: { key: string; line: number; value: unknown }[] = [];
    for (const pair of map.items as Pair<unknown, unknown>[]) {
      this.meter.steps++;
      const keyNode = this.deref(pair.key, this.line(map));
      const line = this.line(pair.key ?? keyNode ?? map);
      if (!isScalar(keyNode) || (keyNode.value !== null && typeof keyNode.value === "object")) {
        this.problem(line, `${where}: keys must be plain names, got ${this.kind(keyNode)}`);
        continue;
      }
      const key = typeof keyNode.value === "string" ? keyNode.value : (keyNode.source ?? String(keyNode.value));
      out.push({ key, line, value: pair.value });
    }
    return out;
  }
}
