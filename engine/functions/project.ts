/**
 * The project file, `baton.yaml` (schema: project.schema.json; docs/functions.md): the function
 * packages and the workflows of a project. `loadProject` checks everything it declares without
 * changing anything: the file against its schema, every workflow file, every function module
 * (bundled, and loaded in an isolate to see which functions it defines). Only a project with no
 * problem at all is deployed.
 */
import { readFile } from "node:fs/promises";
import { dirname, relative, resolve } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { workflowFilesOf } from "../cli/commands/workflow-files.ts";
import { validateWorkflowText } from "../workflow/validate.ts";
import { parseDuration } from "../workflow/duration.ts";
import { bundleFunction } from "./bundle.ts";
import { inspectBundle } from "./check-package.ts";
import { defaultScale, digestOf, type Environment, type ScaleSettings } from "./package-store.ts";
import projectSchema from "./project.schema.json" with { type: "json" };

export const projectFileName = "baton.yaml";

/** One package to deploy: a function of a module. */
export interface PlannedFunction {
  name: string;
  module: string;
  bundle: Uint8Array;
  digest: string;
  environment: Environment;
  scale: ScaleSettings;
  /** The scale as the API's query takes it. */
  query: { environment: Environment; minScale: number; maxScale: number; concurrency: number; idle: string };
}

export interface PlannedWorkflow {
  file: string;
  text: string;
  names: string[];
}

export interface Project {
  file: string;
  functions: PlannedFunction[];
  workflows: PlannedWorkflow[];
}

export class ProjectInvalidError extends Error {
  override name = "ProjectInvalidError";
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? "" : "s"}; nothing was deployed`);
  }
}

interface ProjectDocument {
  baton: "project/v1";
  functions?: {
    module: string;
    name?: string;
    environment?: Environment;
    scale?: { minScale?: number; maxScale?: number; concurrency?: number; idle?: string };
  }[];
  workflows?: string[];
}

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validateDocument = ajv.compile<ProjectDocument>(projectSchema);

/**
 * The workflow files and directories a project file declares (absolute paths), checking only the
 * file itself against its schema: what `baton dev` submits.
 */
export async function projectWorkflowPaths(file: string): Promise<string[]> {
  let document: unknown;
  try {
    document = parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new ProjectInvalidError(file, [error instanceof Error ? error.message : String(error)]);
  }
  if (!validateDocument(document))
    throw new ProjectInvalidError(
      file,
      (validateDocument.errors ?? []).map(
        (error) => `${error.instancePath || "/"} ${error.message ?? "is invalid"}`,
      ),
    );
  const base = dirname(resolve(file));
  return (document.workflows ?? []).map((entry) => resolve(base, entry));
}

/** Reads and checks the project file; throws `ProjectInvalidError` with every problem found. */
export async function loadProject(file: string): Promise<Project> {
  const problems: string[] = [];
  const where = (path: string) => relative(process.cwd(), path) || path;
  let document: unknown;
  try {
    document = parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new ProjectInvalidError(where(file), [error instanceof Error ? error.message : String(error)]);
  }
  if (!validateDocument(document)) {
    throw new ProjectInvalidError(
      where(file),
      (validateDocument.errors ?? []).map(
        (error) => `${error.instancePath || "/"} ${error.message ?? "is invalid"}`,
      ),
    );
  }
  const base = dirname(resolve(file));

  const workflows: PlannedWorkflow[] = [];
  const workflowNames = new Map<string, string>();
  for (const entry of document.workflows ?? []) {
    let files: string[];
    try {
      files = await workflowFilesOf(resolve(base, entry));
    } catch (error) {
      problems.push(`workflows: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    for (const workflowFile of files) {
      const text = await readFile(workflowFile, "utf8");
      const validation = validateWorkflowText(text);
      for (const problem of validation.problems)
        problems.push(
          `${where(workflowFile)}:${problem.line ?? 1}:${problem.column ?? 1} ${problem.code} ${problem.path}: ${problem.message}`,
        );
      const names = validation.workflows.map((definition) => definition.name);
      for (const name of names) {
        const other = workflowNames.get(name);
        if (other !== undefined && other !== workflowFile)
          problems.push(`${where(workflowFile)}: workflow "${name}" is also defined in ${where(other)}`);
        workflowNames.set(name, workflowFile);
      }
      if (validation.problems.length === 0) workflows.push({ file: workflowFile, text, names });
    }
  }

  const functions: PlannedFunction[] = [];
  const bundles = new Map<string, Promise<{ bundle: Uint8Array; defined: string[] }>>();
  for (const [index, entry] of (document.functions ?? []).entries()) {
    const at = `functions[${index}]`;
    const module = resolve(base, entry.module);
    const idleMs = parseDuration(entry.scale?.idle ?? "5m") ?? defaultScale.idleMs;
    const scale: ScaleSettings = {
      minScale: entry.scale?.minScale ?? defaultScale.minScale,
      maxScale: entry.scale?.maxScale ?? Math.max(defaultScale.maxScale, entry.scale?.minScale ?? 0),
      concurrency: entry.scale?.concurrency ?? defaultScale.concurrency,
      idleMs,
    };
    if (scale.minScale > scale.maxScale) problems.push(`${at}.scale: minScale is larger than maxScale`);
    let built: { bundle: Uint8Array; defined: string[] };
    try {
      let pending = bundles.get(module);
      if (pending === undefined) {
        pending = bundleFunction(module).then(async (bundle) => ({
          bundle,
          defined: await inspectBundle(bundle),
        }));
        bundles.set(module, pending);
      }
      built = await pending;
    } catch (error) {
      problems.push(`${at} (${entry.module}): ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const names = entry.name === undefined ? built.defined : [entry.name];
    for (const name of names) {
      if (!built.defined.includes(name)) {
        problems.push(
          `${at}: ${entry.module} does not define a function "${name}" (it defines ${built.defined.join(", ")})`,
        );
        continue;
      }
      if (functions.some((fn) => fn.name === name)) {
        problems.push(`${at}: function "${name}" is declared twice`);
        continue;
      }
      const environment = entry.environment ?? "node20";
      functions.push({
        name,
        module,
        bundle: built.bundle,
        digest: digestOf(built.bundle),
        environment,
        scale,
        query: {
          environment,
          minScale: scale.minScale,
          maxScale: scale.maxScale,
          concurrency: scale.concurrency,
          idle: entry.scale?.idle ?? "5m",
        },
      });
    }
  }
  if (problems.length > 0) throw new ProjectInvalidError(where(file), problems);
  return { file, functions, workflows };
}
