/**
 * Loading workflow text: YAML (JSON is YAML too) into plain values, with a source map that says
 * where each value and key was written, so that every validation problem can point at its line
 * and column. This is the only module that imports the YAML parser.
 *
 * Positions count from 1 and are measured in UTF-16 code units, like JavaScript strings.
 */
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  type Document,
  type YAMLError,
} from "yaml";
import type { Problem } from "../errors.ts";

/** One step of a path into a document: a mapping key or a list index. */
export type PathSegment = string | number;
export type JsonPath = readonly PathSegment[];

/** A place in the text; `0, 0` when the value came without a text (JSON submitted as a value). */
export interface Position {
  line: number;
  column: number;
}

/** Where the parts of one document were written. Every lookup falls back to the nearest enclosing node. */
export interface SourceMap {
  /** Where the value at `path` starts. */
  valueAt(path: JsonPath): Position;
  /** Where the key of the mapping entry at `path` starts; the value's position for list items and the root. */
  keyAt(path: JsonPath): Position;
  /**
   * Where character `offset` of the string at `path` was written: exact for a single-line plain or
   * quoted scalar (quotes and escapes accounted for), otherwise the node's start.
   */
  charAt(path: JsonPath, offset: number): Position;
}

/** A source map for values that came without text: every position is `0, 0`. */
export const noPositions: SourceMap = {
  valueAt: () => ({ line: 0, column: 0 }),
  keyAt: () => ({ line: 0, column: 0 }),
  charAt: () => ({ line: 0, column: 0 }),
};

export interface LoadedDocument {
  /** The document as plain JavaScript (objects, arrays, strings, numbers, booleans, null). */
  value: unknown;
  positions: SourceMap;
  /** Where the document starts. */
  start: Position;
  /** The YAML problems of this document; when there are any, `value` is not to be trusted. */
  problems: Problem[];
}

export interface LoadResult {
  /** The non-empty documents, in order. */
  documents: LoadedDocument[];
  /** Every YAML problem of the text, in order. */
  problems: Problem[];
}

/**
 * Formats a path the way users read it: `steps[3].catch[0].next`, `name`, `with["Content-Type"]`;
 * the empty path is `(document)`.
 */
export function formatPath(segments: JsonPath): string {
  if (segments.length === 0) return "(document)";
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

type ScalarStyle = "plain" | "single" | "double";

interface NodeInfo {
  /** Offsets into the text. */
  value: number;
  key?: number;
  /** Set for single-line plain and quoted scalars: their raw text, quotes included. */
  inline?: { style: ScalarStyle; raw: string };
}

const styles: Record<string, ScalarStyle | undefined> = {
  PLAIN: "plain",
  QUOTE_SINGLE: "single",
  QUOTE_DOUBLE: "double",
};

function pathKey(path: JsonPath): string {
  return JSON.stringify(path);
}

/** The offset, in the raw text of a scalar, of character `offset` of its value. */
function rawOffset(inline: { style: ScalarStyle; raw: string }, offset: number): number {
  const { style, raw } = inline;
  if (style === "plain") return offset;
  let at = 1;
  for (let i = 0; i < offset && at < raw.length - 1; i++) {
    if (style === "single") at += raw[at] === "'" ? 2 : 1;
    else if (raw[at] !== "\\") at += 1;
    else {
      const escape = raw[at + 1];
      at += escape === "x" ? 4 : escape === "u" ? 6 : escape === "U" ? 10 : 2;
    }
  }
  return at;
}

function createSourceMap(nodes: Map<string, NodeInfo>, lineCounter: LineCounter, root: number): SourceMap {
  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const nearest = (path: JsonPath): NodeInfo => {
    for (let length = path.length; length > 0; length--) {
      const info = nodes.get(pathKey(path.slice(0, length)));
      if (info) return info;
    }
    return nodes.get(pathKey([])) ?? { value: root };
  };
  return {
    valueAt: (path) => at(nearest(path).value),
    keyAt: (path) => {
      const info = nodes.get(pathKey(path));
      return at(info?.key ?? nearest(path).value);
    },
    charAt: (path, offset) => {
      const info = nodes.get(pathKey(path));
      if (!info?.inline) return at(nearest(path).value);
      return at(info.value + Math.min(rawOffset(info.inline, offset), info.inline.raw.length));
    },
  };
}

/** Records where every node of a document was written, by path. Aliases are not followed. */
function mapNodes(text: string, contents: unknown): Map<string, NodeInfo> {
  const nodes = new Map<string, NodeInfo>();
  const visit = (node: unknown, path: PathSegment[], key?: number): void => {
    if (!isScalar(node) && !isMap(node) && !isSeq(node) && !isAlias(node)) return;
    // `key:` with nothing after it parses to a null scalar that covers no text: point at the key.
    const isEmpty = isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1];
    const start = (isEmpty ? key : node.range?.[0]) ?? key ?? 0;
    const info: NodeInfo = { value: start };
    if (key !== undefined) info.key = key;
    nodes.set(pathKey(path), info);
    if (isScalar(node)) {
      const style = styles[node.type ?? ""];
      const raw = node.range ? text.slice(node.range[0], node.range[1]) : "";
      const isSingleLine = !raw.includes("\n") && !raw.includes("\r");
      if (style && isSingleLine && (style !== "plain" || raw === node.value)) info.inline = { style, raw };
    } else if (isMap(node)) {
      for (const pair of node.items) {
        const keyNode = pair.key;
        const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const keyStart =
          isScalar(keyNode) || isMap(keyNode) || isSeq(keyNode) ? keyNode.range?.[0] : undefined;
        const childPath = [...path, name];
        if (pair.value === null) {
          // `{ key }` in a flow mapping: no value node at all.
          if (keyStart !== undefined) nodes.set(pathKey(childPath), { value: keyStart, key: keyStart });
        } else visit(pair.value, childPath, keyStart);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => visit(item, [...path, index]));
    }
  };
  visit(contents, []);
  return nodes;
}

function yamlProblem(error: YAMLError, text: string, lineCounter: LineCounter): Problem {
  const { line, col } = lineCounter.linePos(error.pos[0]);
  let message = error.message.trim();
  if (error.code === "DUPLICATE_KEY") {
    const key = text.slice(error.pos[0], error.pos[1]).trim();
    message = `duplicate key ${JSON.stringify(key)}: the keys of a mapping must be unique; remove or rename one`;
  } else if (error.code === "TAG_RESOLVE_FAILED") {
    const tag = text.slice(error.pos[0], error.pos[1]).trim().split(/\s/)[0] ?? "";
    message = `unsupported YAML tag ${JSON.stringify(tag)}: workflows hold plain JSON values; remove the tag`;
  }
  return { code: "YamlSyntax", message, path: formatPath([]), line, column: col };
}

/**
 * After a syntax error the parser often reports more that follow from it (a bad indentation is
 * also "an implicit key without a value"); only the first is the user's mistake. Duplicate keys
 * and unsupported tags stand on their own and are all kept.
 */
function independentErrors(errors: YAMLError[]): YAMLError[] {
  const standalone = new Set(["DUPLICATE_KEY", "TAG_RESOLVE_FAILED"]);
  const firstSyntaxError = errors.find((error) => !standalone.has(error.code));
  return errors.filter((error) => standalone.has(error.code) || error === firstSyntaxError);
}

function isEmptyDocument(document: Document.Parsed): boolean {
  const contents = document.contents;
  if (contents === null) return true;
  // A document of comments only parses to a null scalar that covers no text.
  return isScalar(contents) && contents.value === null && contents.range[0] === contents.range[1];
}

/**
 * Parses YAML text (one or several documents separated by `---`) into plain values with their
 * source maps. Empty documents are left out. Syntax errors, duplicate keys and unresolved tags are
 * `YamlSyntax` problems; a document with problems is still returned, with them attached.
 */
export function loadYaml(text: string): LoadResult {
  const lineCounter = new LineCounter();
  // Only JSON-compatible YAML: `!!binary`, `!!set`, `!!timestamp` and other tags are refused, not converted.
  const parsed = parseAllDocuments(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    resolveKnownTags: false,
    logLevel: "error",
  });
  const documents: LoadedDocument[] = [];
  const problems: Problem[] = [];
  if ("empty" in parsed) {
    for (const error of [...parsed.errors, ...parsed.warnings]) {
      problems.push(yamlProblem(error, text, lineCounter));
    }
    return { documents, problems };
  }
  for (const document of parsed) {
    const documentProblems = independentErrors([...document.errors, ...document.warnings]).map((error) =>
      yamlProblem(error, text, lineCounter),
    );
    if (documentProblems.length === 0 && isEmptyDocument(document)) continue;
    const start = document.contents?.range[0] ?? document.range[0];
    let value: unknown = null;
    try {
      value = document.toJS({ maxAliasCount: 100 });
    } catch (error) {
      // Too many aliases (a "billion laughs" document) or an alias to nothing.
      const { line, col } = lineCounter.linePos(start);
      const reason = error instanceof Error ? error.message : String(error);
      documentProblems.push({ code: "YamlSyntax", message: reason, path: formatPath([]), line, column: col });
    }
    const positions = createSourceMap(mapNodes(text, document.contents), lineCounter, start);
    problems.push(...documentProblems);
    documents.push({ value, positions, start: positions.valueAt([]), problems: documentProblems });
  }
  return { documents, problems };
}
