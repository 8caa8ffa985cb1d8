/**
 * docker-compose.yml, the Dockerfile and .dockerignore, checked without Docker (none runs where
 * Baton is developed): the compose file is valid against the Compose Specification's JSON Schema
 * (test/fixtures/compose-spec.schema.json, see test/fixtures/README.md); every command a Baton
 * service runs exists and is the one README.md's "Docker Compose" section shows; every variable
 * it sets is documented; the published ports are the ones the README gives; the configuration
 * the engine and the API read from the compose file is accepted by the code that reads it; and
 * the image is built from Node 20 with `npm ci`, from files that exist and are not left out.
 *
 * All the checks are one function, `problemsOf`, over the files' text; the last tests break a
 * copy of the real files in memory, one way at a time, to show that each check can fail.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { ConfigError, loadApiConfig, loadEngineConfig } from "../../engine/config.ts";
import { checkListenAddress } from "../../engine/api/start-api.ts";
import { main } from "../../engine/cli/main.ts";
import { findFunctionModules } from "../../engine/dev/workers.ts";
import { workflowFilesOf } from "../../engine/cli/commands/workflow-files.ts";

const root = join(import.meta.dirname, "../..");
const readText = (path: string): string => readFileSync(join(root, path), "utf8");

/** The files the checks read, as text, so that a test can hand over a broken copy. */
interface ProjectFiles {
  compose: string;
  dockerfile: string;
  dockerignore: string;
  readme: string;
}

function realFiles(): ProjectFiles {
  return {
    compose: readText("docker-compose.yml"),
    dockerfile: readText("Dockerfile"),
    dockerignore: readText(".dockerignore"),
    readme: readText("README.md"),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading the files

type Mapping = Record<string, unknown>;

const isMapping = (value: unknown): value is Mapping =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const mappingOf = (value: unknown): Mapping => (isMapping(value) ? value : {});

/** A YAML scalar as text (Compose reads `8080`, `true` and `"8080"` alike); a list or mapping as JSON. */
function textOf(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** The compose file as Compose reads it: YAML with `<<` merge keys resolved. */
function parseCompose(text: string): Mapping {
  return mappingOf(parse(text, { merge: true }));
}

function servicesOf(compose: Mapping): [string, Mapping][] {
  return Object.entries(mappingOf(compose.services)).map(([name, service]) => [name, mappingOf(service)]);
}

/** The services that run Baton: those built from the Dockerfile. */
function batonServicesOf(compose: Mapping): [string, Mapping][] {
  return servicesOf(compose).filter(([, service]) => service.build !== undefined);
}

/** A service's environment as a mapping (Compose also takes a list of `NAME=value`). */
function environmentOf(service: Mapping): Record<string, string> {
  const environment = service.environment;
  const entries: [string, unknown][] = Array.isArray(environment)
    ? environment.map((item) => {
        const [name = "", ...value] = textOf(item).split("=");
        return [name, value.join("=")];
      })
    : Object.entries(mappingOf(environment));
  return Object.fromEntries(entries.map(([name, value]) => [name, textOf(value)]));
}

/** A command in exec form (a list); Compose's string form would go through no shell either, but is split on spaces. */
function commandOf(service: Mapping): string[] | undefined {
  const command = service.command;
  if (command === undefined || command === null) return undefined;
  return Array.isArray(command) ? command.map(textOf) : textOf(command).split(/\s+/);
}

/**
 * Compose's interpolation of `${NAME}`, `${NAME:-default}`, `${NAME-default}` and `$$` against
 * `env`; the checks use an empty environment, so they see what `docker compose up` gets by default.
 */
function interpolate(text: string, env: Record<string, string | undefined> = {}): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}/g,
    (match, name, colon, fallback) => {
      if (match === "$$") return "$";
      const value = env[name as string];
      const isUnset = value === undefined || (colon === ":" && value === "");
      return isUnset ? ((fallback as string | undefined) ?? "") : value;
    },
  );
}

/** The variables the compose file reads from the user's environment (`${NAME...}`). */
function interpolatedVariables(composeText: string): Set<string> {
  const withoutComments = composeText
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n");
  return new Set([...withoutComments.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((match) => match[1]!));
}

interface PublishedPort {
  hostIp: string | undefined;
  hostPort: number;
  containerPort: number;
}

/** `ports:` entries, short (`[ip:]host:container[/proto]`) or long syntax. */
function publishedPortsOf(service: Mapping): PublishedPort[] {
  const ports = Array.isArray(service.ports) ? service.ports : [];
  return ports.flatMap((entry): PublishedPort[] => {
    if (isMapping(entry)) {
      const hostIp = entry.host_ip === undefined ? undefined : textOf(entry.host_ip);
      return [{ hostIp, hostPort: Number(entry.published), containerPort: Number(entry.target) }];
    }
    const match = /^(?:(.+):)?(\d+):(\d+)(?:\/\w+)?$/.exec(textOf(entry));
    if (!match) return [{ hostIp: undefined, hostPort: NaN, containerPort: Number(textOf(entry)) }];
    return [{ hostIp: match[1], hostPort: Number(match[2]), containerPort: Number(match[3]) }];
  });
}

/** The text of a `## heading` section of a Markdown document, up to the next `## `. */
function sectionOf(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start === -1) return "";
  const end = markdown.indexOf("\n## ", start + 1);
  return markdown.slice(start, end === -1 ? undefined : end);
}

/** The variables of the README's configuration table: the first cell of each row, in backticks. */
function documentedVariables(readme: string): Set<string> {
  const table = sectionOf(readme, "Configuration");
  return new Set([...table.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((match) => match[1]!));
}

const collapseSpaces = (text: string): string => text.replace(/\s+/g, " ");

/** The names `baton help` lists: the CLI's own list of commands. */
async function cliCommands(): Promise<Set<string>> {
  let help = "";
  const code = await main(["help"], { stdout: (text) => (help += text), stderr: () => {} });
  expect(code).toBe(0);
  const commandsPart = help.slice(help.indexOf("Commands:"));
  return new Set([...commandsPart.matchAll(/^ {2}(\S+) {2,}/gm)].map((match) => match[1]!));
}

/** A Dockerfile's instructions, continuation lines joined, comments left out. */
function instructionsOf(dockerfile: string): { keyword: string; rest: string }[] {
  return dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [keyword = "", ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), rest: rest.join(" ") };
    });
}

/**
 * Whether `.dockerignore` leaves `path` out of the build context. Docker matches each pattern
 * against the whole path from the context's root (`*` stays within one directory, `**` crosses
 * them); a directory left out takes everything in it; the last matching pattern wins (`!` keeps).
 */
function isIgnored(dockerignore: string, path: string): boolean {
  const patterns = dockerignore
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const candidates = path.split("/").map((_, index, parts) => parts.slice(0, index + 1).join("/"));
  let ignored = false;
  for (const line of patterns) {
    const keeps = line.startsWith("!");
    const pattern = (keeps ? line.slice(1) : line).replace(/^\/+|\/+$/g, "");
    const source = pattern
      .split(/(\*\*|\*|\?)/)
      .map((part) =>
        part === "**"
          ? ".*"
          : part === "*"
            ? "[^/]*"
            : part === "?"
              ? "[^/]"
              : part.replace(/[.+^${}()|[\]\\]/g, "\\$&"),
      )
      .join("");
    const regex = new RegExp(`^${source}$`);
    if (candidates.some((candidate) => regex.test(candidate))) ignored = !keeps;
  }
  return ignored;
}

// ---------------------------------------------------------------------------------------------
// The checks

const schemaValidator = (() => {
  const schema = JSON.parse(readText("test/fixtures/compose-spec.schema.json")) as Mapping;
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
  // The schema names draft-07 by its https address; ajv knows the meta-schema by its http one.
  const draft07 = JSON.parse(readText("node_modules/ajv/dist/refs/json-schema-draft-07.json")) as Mapping;
  ajv.addMetaSchema({ ...draft07, $id: textOf(schema.$schema) });
  return ajv.compile(schema);
})();

function schemaProblems(compose: Mapping): string[] {
  if (schemaValidator(compose)) return [];
  return (schemaValidator.errors ?? []).map(
    (error) => `schema: ${error.instancePath || "/"} ${error.message ?? ""} ${JSON.stringify(error.params)}`,
  );
}

interface Context {
  files: ProjectFiles;
  compose: Mapping;
  dockerSection: string;
  cli: Set<string>;
}

/** Paths in a command's arguments that must exist in the repository (and so in the image). */
const looksLikeRepositoryPath = (argument: string): boolean =>
  !argument.startsWith("-") && !argument.startsWith("/") && /\/|\.(?:[cm]?[jt]s|ya?ml|json)$/.test(argument);

/** The source file tsc compiles to `dist/….js` (tsconfig.build.json: rootDir ".", outDir "dist"). */
const sourceOfCompiled = (path: string): string => path.replace(/^dist\//, "").replace(/\.js$/, ".ts");

function commandProblems({ compose, dockerSection, cli, files }: Context): string[] {
  const problems: string[] = [];
  for (const [name, service] of batonServicesOf(compose)) {
    const command = commandOf(service);
    if (command === undefined) {
      problems.push(`${name}: no command (every Baton service names what it runs)`);
      continue;
    }
    const [program, first, second] = command;
    if (program === "baton") {
      if (!cli.has(first ?? "")) problems.push(`${name}: "baton ${first}" is not a command of the CLI`);
    } else if (program === "node" && first !== undefined && /^dist\/.*\.js$/.test(first)) {
      // Compiled in the image (the Dockerfile's build stage): its source must exist and be copied in.
      const source = sourceOfCompiled(first);
      if (!existsSync(join(root, source)))
        problems.push(`${name}: "${first}" is compiled from ${source}, which does not exist`);
      else if (isIgnored(files.dockerignore, source))
        problems.push(`${name}: ${source} is left out of the image by .dockerignore`);
      if (second !== undefined)
        problems.push(`${name}: "${command.join(" ")}" passes Node options after the script`);
    } else {
      problems.push(
        `${name}: "${command.join(" ")}" is neither a baton command nor a compiled script (node dist/….js)`,
      );
    }
    for (const path of command.filter(
      (argument) => looksLikeRepositoryPath(argument) && !argument.startsWith("dist/"),
    )) {
      if (!existsSync(join(root, path))) problems.push(`${name}: ${path} does not exist`);
      else if (isIgnored(files.dockerignore, path.replace(/\/+$/, "")))
        problems.push(`${name}: ${path} is left out of the image by .dockerignore`);
    }
    if (!collapseSpaces(dockerSection).includes(collapseSpaces(command.join(" "))))
      problems.push(`${name}: README's Docker Compose section does not show "${command.join(" ")}"`);
  }
  return problems;
}

/** The worker service must serve what `baton dev` serves: every module of functions/. */
function workerModuleProblems({ compose }: Context): string[] {
  const expected = findFunctionModules(join(root, "functions")).map((module) => relative(root, module));
  const workers = batonServicesOf(compose).filter(([, service]) => commandOf(service)?.[1] === "worker");
  if (workers.length === 0) return ["no service runs baton worker"];
  return workers.flatMap(([name, service]) => {
    const served = (commandOf(service) ?? []).slice(2);
    const missing = expected.filter((module) => !served.includes(module));
    return missing.length === 0 ? [] : [`${name}: does not serve ${missing.join(", ")} (baton dev does)`];
  });
}

function environmentProblems({ compose, dockerSection, files }: Context): string[] {
  const documented = documentedVariables(files.readme);
  const problems: string[] = [];
  for (const [name, service] of servicesOf(compose)) {
    const isBaton = service.build !== undefined;
    for (const variable of Object.keys(environmentOf(service))) {
      // Baton's variables belong in the configuration table; another image's, in the Docker section.
      if (isBaton && !documented.has(variable))
        problems.push(`${name}: ${variable} is not in README's configuration table`);
      if (!isBaton && !dockerSection.includes(variable))
        problems.push(`${name}: ${variable} is not mentioned in README's Docker Compose section`);
    }
  }
  for (const variable of interpolatedVariables(files.compose)) {
    if (!documented.has(variable))
      problems.push(
        `\${${variable}} is read from the environment but is not in README's configuration table`,
      );
  }
  return problems;
}

/** Every variable engine/config.ts reads is in the README's configuration table. */
function configTableProblems({ files }: Context): string[] {
  const documented = documentedVariables(files.readme);
  const source = readText("engine/config.ts");
  const read = new Set([
    ...[...source.matchAll(/env\.([A-Z][A-Z0-9_]*)/g)].map((match) => match[1]!),
    ...[...source.matchAll(/\(env, "([A-Z][A-Z0-9_]*)"/g)].map((match) => match[1]!),
  ]);
  if (read.size === 0) return ["found no variable in engine/config.ts: has the way it reads them changed?"];
  return [...read]
    .filter((variable) => !documented.has(variable))
    .map((variable) => `${variable} (engine/config.ts) is not in README's configuration table`);
}

function portProblems({ compose, dockerSection }: Context): string[] {
  const problems: string[] = [];
  const published = new Set<number>();
  for (const [name, service] of servicesOf(compose)) {
    for (const port of publishedPortsOf(service)) {
      published.add(port.hostPort);
      // The README says so, and the API's default token is public: nothing is reachable from outside.
      if (port.hostIp !== "127.0.0.1")
        problems.push(`${name}: port ${port.hostPort} is published on every interface, not on 127.0.0.1`);
    }
  }
  const inReadme = new Set(
    [...dockerSection.matchAll(/(?:127\.0\.0\.1|localhost):(\d+)/g)].map((match) => Number(match[1])),
  );
  for (const port of published)
    if (!inReadme.has(port))
      problems.push(`port ${port} is published but README's Docker section does not give it`);
  for (const port of inReadme)
    if (!published.has(port))
      problems.push(`README's Docker section gives port ${port}, which is not published`);
  return problems;
}

function dependencyProblems({ compose }: Context): string[] {
  const services = new Map(servicesOf(compose));
  const problems: string[] = [];
  for (const [name, service] of services) {
    for (const [dependency, settings] of Object.entries(mappingOf(service.depends_on))) {
      const target = services.get(dependency);
      if (target === undefined) problems.push(`${name}: depends on ${dependency}, which is not a service`);
      else if (mappingOf(settings).condition === "service_healthy" && target.healthcheck === undefined)
        problems.push(`${name}: waits for ${dependency} to be healthy, but ${dependency} has no healthcheck`);
    }
  }
  return problems;
}

/**
 * The configuration the Baton services get by default is accepted by the code that reads it,
 * and the parts that must agree do: the API's port is the published one and the one its health
 * check asks; the CLI's BATON_URL and BATON_TOKEN reach it; NATS_URL names a service.
 */
/**
 * A service asking for N replicas (BATON_NATS_REPLICAS) needs N or more NATS nodes in NATS_URL,
 * which form one cluster: each is started with the same `--cluster_name`, listens for routes
 * with `--cluster`, and names every other one in `--routes` (on its cluster port). The services
 * must share the profiles of the nodes they use.
 */
function replicationProblems(
  name: string,
  env: Record<string, string>,
  natsHosts: string[],
  services: Map<string, Mapping>,
): string[] {
  const replicas = Number(env.BATON_NATS_REPLICAS ?? "1");
  if (!(replicas > 1)) return [];
  const problems: string[] = [];
  if (natsHosts.length < replicas)
    problems.push(`${name}: BATON_NATS_REPLICAS=${replicas} but NATS_URL names ${natsHosts.length} node(s)`);
  const flag = (command: string[], option: string) => command[command.indexOf(option) + 1];
  const clusterNames = new Set<string | undefined>();
  for (const host of natsHosts) {
    const node = services.get(host);
    if (node === undefined) continue;
    const command = commandOf(node) ?? [];
    clusterNames.add(command.includes("--cluster_name") ? flag(command, "--cluster_name") : undefined);
    if (!command.includes("-js")) problems.push(`${host}: not started with JetStream (-js)`);
    const listen = command.includes("--cluster") ? new URL(flag(command, "--cluster") ?? "").port : undefined;
    if (listen === undefined) problems.push(`${host}: listens for no cluster routes (--cluster)`);
    const routes = (command.includes("--routes") ? (flag(command, "--routes") ?? "") : "")
      .split(",")
      .filter((route) => route !== "")
      .map((route) => new URL(route));
    for (const other of natsHosts.filter((candidate) => candidate !== host)) {
      const otherCommand = commandOf(services.get(other) ?? {}) ?? [];
      const otherPort = otherCommand.includes("--cluster")
        ? new URL(flag(otherCommand, "--cluster") ?? "").port
        : "";
      if (!routes.some((route) => route.hostname === other && route.port === otherPort))
        problems.push(`${host}: --routes does not name ${other}'s cluster port`);
    }
    const profiles = JSON.stringify(node.profiles ?? []);
    if (JSON.stringify(services.get(name)?.profiles ?? []) !== profiles)
      problems.push(`${name}: not in the same profiles as ${host} (${profiles})`);
  }
  if (clusterNames.size !== 1 || clusterNames.has(undefined))
    problems.push(`${name}: the NATS nodes it names are not one cluster (--cluster_name)`);
  return problems;
}

function configurationProblems({ compose, dockerSection }: Context): string[] {
  const problems: string[] = [];
  const services = new Map(servicesOf(compose));
  const resolved = (service: Mapping): Record<string, string> =>
    Object.fromEntries(
      Object.entries(environmentOf(service)).map(([key, value]) => [key, interpolate(value)]),
    );
  const apis = new Map<string, { port: number; tokens: string[] }>();
  for (const [name, service] of batonServicesOf(compose)) {
    const env = resolved(service);
    try {
      loadEngineConfig(env);
      if (commandOf(service)?.includes("dist/engine/api/run-api.js")) {
        const api = loadApiConfig(env);
        checkListenAddress(api);
        apis.set(name, { port: api.listen.port, tokens: api.tokens });
        if (!publishedPortsOf(service).some((port) => port.containerPort === api.listen.port))
          problems.push(`${name}: the API listens on ${api.listen.port}, which is not published`);
        if (!JSON.stringify(mappingOf(service.healthcheck).test ?? "").includes(`:${api.listen.port}/`))
          problems.push(`${name}: the health check does not ask the API's port ${api.listen.port}`);
        for (const token of api.tokens)
          if (!dockerSection.includes(token))
            problems.push(`${name}: the default token is not in README's Docker section`);
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(`${name}: ${error.message}`);
    }
    // NATS_URL: one server or several, comma-separated (the nodes of a cluster).
    const natsHosts = (env.NATS_URL ?? "")
      .split(",")
      .filter((url) => url.trim() !== "")
      .map((url) => new URL(url.trim()).hostname);
    for (const natsHost of natsHosts)
      if (!services.has(natsHost))
        problems.push(`${name}: NATS_URL names ${natsHost}, which is not a service`);
    problems.push(...replicationProblems(name, env, natsHosts, services));
  }
  if (apis.size === 0) problems.push("no service runs the HTTP API (dist/engine/api/run-api.js)");
  for (const [name, service] of batonServicesOf(compose)) {
    const env = resolved(service);
    if (env.BATON_URL === undefined) continue;
    const url = new URL(env.BATON_URL);
    const api = apis.get(url.hostname);
    if (api === undefined)
      problems.push(`${name}: BATON_URL names ${url.hostname}, which does not run the API`);
    else if (Number(url.port || 80) !== api.port)
      problems.push(`${name}: BATON_URL's port ${url.port} is not the API's ${api.port}`);
    else if (api.tokens.length > 0 && !api.tokens.includes(env.BATON_TOKEN ?? ""))
      problems.push(`${name}: BATON_TOKEN is not one of ${url.hostname}'s BATON_API_TOKENS`);
  }
  return problems;
}

function dockerfileProblems({ files, cli }: Context): string[] {
  const problems: string[] = [];
  const instructions = instructionsOf(files.dockerfile);
  const from =
    instructions
      .filter(({ keyword }) => keyword === "FROM")
      .at(-1)
      ?.rest.split(/\s+/)[0] ?? "";
  if (!/^(?:docker\.io\/(?:library\/)?)?node:20(?:[.-]|$)/.test(from))
    problems.push(
      `Dockerfile: the image is built FROM ${from || "nothing"}, not Node 20 (package.json's engines)`,
    );
  if (!instructions.some(({ keyword, rest }) => keyword === "RUN" && /\bnpm ci\b/.test(rest)))
    problems.push("Dockerfile: does not install the dependencies with npm ci (from the lockfile)");
  // bin/baton.mjs and `node dist/….js` run the compiled code: the image must build it.
  if (!instructions.some(({ keyword, rest }) => keyword === "RUN" && /\bnpm run build\b/.test(rest)))
    problems.push("Dockerfile: does not compile the TypeScript (npm run build)");
  const workdir = instructions.filter(({ keyword }) => keyword === "WORKDIR").at(-1)?.rest ?? "/";
  for (const { keyword, rest } of instructions) {
    if (keyword === "COPY" || keyword === "ADD") {
      const words = rest.split(/\s+/);
      if (words.some((word) => word.startsWith("--from"))) continue;
      const sources = words.filter((word) => !word.startsWith("--")).slice(0, -1);
      for (const source of sources) {
        if (!existsSync(join(root, source))) problems.push(`Dockerfile: ${keyword} ${source}: no such file`);
        else if (source !== "." && isIgnored(files.dockerignore, source))
          problems.push(`Dockerfile: ${keyword} ${source}: left out of the build context by .dockerignore`);
      }
    }
    if (keyword === "RUN") {
      // Files of the project the build uses by their path in the image.
      const prefix = `${workdir.replace(/\/+$/, "")}/`;
      for (const word of rest.split(/\s+/).filter((candidate) => candidate.startsWith(prefix))) {
        const path = word.slice(prefix.length);
        if (!existsSync(join(root, path))) problems.push(`Dockerfile: RUN uses ${word}: no such file`);
        else if (isIgnored(files.dockerignore, path))
          problems.push(`Dockerfile: RUN uses ${word}, which .dockerignore leaves out`);
      }
    }
  }
  const cmd = instructions.filter(({ keyword }) => keyword === "CMD").at(-1)?.rest;
  if (cmd !== undefined) {
    const words = cmd.startsWith("[") ? (JSON.parse(cmd) as string[]) : cmd.split(/\s+/);
    if (words[0] !== "baton" || !cli.has(words[1] ?? ""))
      problems.push(`Dockerfile: CMD ${cmd} is not a baton command`);
  }
  // What every Baton service needs to start at all.
  for (const needed of ["package.json", "package-lock.json", "bin/baton.mjs", "engine", "sdk"])
    if (isIgnored(files.dockerignore, needed)) problems.push(`.dockerignore leaves out ${needed}`);
  return problems;
}

/** The `-f` arguments of `baton apply` name workflow files that exist. */
async function applyProblems({ compose }: Context): Promise<string[]> {
  const problems: string[] = [];
  for (const [name, service] of batonServicesOf(compose)) {
    const command = commandOf(service) ?? [];
    if (command[0] !== "baton" || command[1] !== "apply") continue;
    const targets = command.flatMap((word, index) => (command[index - 1] === "-f" ? [word] : []));
    if (targets.length === 0) problems.push(`${name}: baton apply without -f`);
    for (const target of targets) {
      const found = await workflowFilesOf(join(root, target)).catch(() => []);
      if (found.length === 0) problems.push(`${name}: ${target} holds no workflow file`);
    }
  }
  return problems;
}

async function problemsOf(files: ProjectFiles): Promise<string[]> {
  const compose = parseCompose(files.compose);
  const context: Context = {
    files,
    compose,
    dockerSection: sectionOf(files.readme, "Docker Compose"),
    cli: await cliCommands(),
  };
  if (context.dockerSection === "") return ['README.md has no "## Docker Compose" section'];
  return [
    ...schemaProblems(compose),
    ...commandProblems(context),
    ...workerModuleProblems(context),
    ...environmentProblems(context),
    ...configTableProblems(context),
    ...portProblems(context),
    ...dependencyProblems(context),
    ...configurationProblems(context),
    ...dockerfileProblems(context),
    ...(await applyProblems(context)),
  ];
}

// ---------------------------------------------------------------------------------------------
// The tests

describe("docker-compose.yml, Dockerfile, .dockerignore", () => {
  it("the schema copy is the Compose Specification's, draft-07", () => {
    const schema = JSON.parse(readText("test/fixtures/compose-spec.schema.json")) as Mapping;
    expect(schema.$schema).toMatch(/draft-07/);
    expect(schema.title).toBe("Compose Specification");
  });

  it("the compose file is valid, and agrees with the README, the CLI and the code", async () => {
    expect(await problemsOf(realFiles())).toEqual([]);
  });

  it("runs NATS with JetStream, the API, the workers, the workflows' submission and Jaeger", () => {
    const compose = parseCompose(readText("docker-compose.yml"));
    const commands = servicesOf(compose).map(([, service]) => commandOf(service)?.join(" ") ?? "");
    expect(commands.some((command) => /(^|\s)-js(\s|$)/.test(command))).toBe(true);
    expect(commands).toContain("node dist/engine/api/run-api.js");
    expect(commands.some((command) => command.startsWith("baton worker "))).toBe(true);
    expect(commands.some((command) => command.startsWith("baton apply "))).toBe(true);
    const images = servicesOf(compose).map(([, service]) => textOf(service.image));
    expect(images.some((image) => image.startsWith("jaegertracing/all-in-one:"))).toBe(true);
    expect(images.some((image) => /^nats:/.test(image))).toBe(true);
  });

  it("gives the engine and the workers the OpenTelemetry variables, pointing at the Jaeger service", () => {
    const compose = parseCompose(readText("docker-compose.yml"));
    const services = new Map(servicesOf(compose));
    const jaeger = [...services].find(([, service]) => textOf(service.image).startsWith("jaegertracing/"));
    expect(jaeger).toBeDefined();
    const [jaegerName, jaegerService] = jaeger!;
    expect(environmentOf(jaegerService).COLLECTOR_OTLP_ENABLED).toBe("true");
    const runners = batonServicesOf(compose).filter(([, service]) => environmentOf(service).NATS_URL);
    expect(runners.length).toBeGreaterThanOrEqual(2);
    for (const [, service] of runners) {
      const env = environmentOf(service);
      expect(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "").host).toBe(`${jaegerName}:4318`);
      expect(env.OTEL_TRACES_EXPORTER).toBe("otlp");
      expect(env.OTEL_SERVICE_NAME).toMatch(/^baton-/);
      expect(interpolate(env.OTEL_SDK_DISABLED ?? "")).not.toBe("true");
    }
    expect(new Set(runners.map(([, service]) => environmentOf(service).OTEL_SERVICE_NAME)).size).toBe(
      runners.length,
    );
  });

  describe("each check can fail: a broken copy of the files is reported", () => {
    const editCompose =
      (edit: (compose: Mapping) => void) =>
      (files: ProjectFiles): ProjectFiles => {
        const compose = parseCompose(files.compose);
        edit(compose);
        return { ...files, compose: JSON.stringify(compose) }; // JSON is YAML
      };
    const service = (compose: Mapping, name: string): Mapping => mappingOf(mappingOf(compose.services)[name]);

    const breakages: [string, (files: ProjectFiles) => ProjectFiles, RegExp][] = [
      [
        "a key the Compose schema does not have",
        editCompose((compose) => (service(compose, "engine").restart_policy = "always")),
        /^schema: /,
      ],
      [
        "a command the CLI does not have",
        editCompose(
          (compose) => (service(compose, "apply").command = ["baton", "submit", "-f", "workflows"]),
        ),
        /"baton submit" is not a command/,
      ],
      [
        "a command the README does not show",
        editCompose((compose) => (service(compose, "apply").command = ["baton", "ls"])),
        /does not show "baton ls"/,
      ],
      [
        "a worker that leaves out a module of functions/",
        editCompose((compose) => {
          const command = service(compose, "worker").command as string[];
          command.splice(command.indexOf("functions/noop.ts"), 1);
        }),
        /does not serve .*functions\/noop\.ts/,
      ],
      [
        "an undocumented variable",
        editCompose((compose) => (mappingOf(service(compose, "worker").environment).BATON_TURBO = "1")),
        /BATON_TURBO is not in README's configuration table/,
      ],
      [
        "a row missing from the configuration table",
        (files) => ({ ...files, readme: files.readme.replace(/^\| `BATON_API_MAX_WAIT`.*\n/m, "") }),
        /BATON_API_MAX_WAIT \(engine\/config\.ts\) is not in README/,
      ],
      [
        "a port the README does not give",
        (files) => ({
          ...files,
          compose: files.compose.replace('"127.0.0.1:8080:8080"', '"127.0.0.1:8082:8080"'),
        }),
        /port 8082 is published but README/,
      ],
      [
        "a cluster node that does not route to another",
        editCompose((compose) => {
          const command = service(compose, "nats-1").command as string[];
          command[command.indexOf("--routes") + 1] = "nats://nats-2:6222";
        }),
        /nats-1: --routes does not name nats-3's cluster port/,
      ],
      [
        "more replicas than the cluster has nodes",
        editCompose(
          (compose) => (mappingOf(service(compose, "worker-cluster").environment).BATON_NATS_REPLICAS = "5"),
        ),
        /worker-cluster: BATON_NATS_REPLICAS=5 but NATS_URL names 3 node\(s\)/,
      ],
      [
        "a replicated engine on a single server",
        editCompose(
          (compose) => (mappingOf(service(compose, "engine").environment).BATON_NATS_REPLICAS = "3"),
        ),
        /engine: BATON_NATS_REPLICAS=3 but NATS_URL names 1 node\(s\)/,
      ],
      [
        "a port open on every interface",
        (files) => ({ ...files, compose: files.compose.replace('"127.0.0.1:16686:16686"', '"16686:16686"') }),
        /port 16686 is published on every interface/,
      ],
      [
        "a token the API refuses",
        editCompose((compose) => {
          const env = mappingOf(service(compose, "engine").environment);
          env.BATON_API_TOKENS = "short";
          mappingOf(service(compose, "apply").environment).BATON_TOKEN = "short";
        }),
        /BATON_API_TOKENS: token 1 is 5 characters long/,
      ],
      [
        "an API on every interface without a token",
        editCompose((compose) => delete mappingOf(service(compose, "engine").environment).BATON_API_TOKENS),
        /refusing to listen on 0\.0\.0\.0:8080 without a token/,
      ],
      [
        "a CLI pointed at the wrong port",
        editCompose(
          (compose) => (mappingOf(service(compose, "apply").environment).BATON_URL = "http://engine:9090"),
        ),
        /BATON_URL's port 9090 is not the API's 8080/,
      ],
      [
        "a wait for a health check that does not exist",
        editCompose((compose) => delete service(compose, "nats").healthcheck),
        /waits for nats to be healthy, but nats has no healthcheck/,
      ],
      [
        "another Node",
        (files) => ({
          ...files,
          dockerfile: files.dockerfile.replace(/^FROM node:20\S*$/m, "FROM node:18-slim"),
        }),
        /FROM node:18-slim, not Node 20/,
      ],
      [
        "npm install instead of npm ci",
        (files) => ({ ...files, dockerfile: files.dockerfile.replace(/npm ci/g, "npm install") }),
        /does not install the dependencies with npm ci/,
      ],
      [
        "a COPY of a file that does not exist",
        (files) => ({
          ...files,
          dockerfile: files.dockerfile.replace("package-lock.json ./", "yarn.lock ./"),
        }),
        /COPY yarn\.lock: no such file/,
      ],
      [
        "a .dockerignore that leaves out what a service runs",
        (files) => ({ ...files, dockerignore: `${files.dockerignore}\nfunctions\n` }),
        /functions\/examples\.ts is left out of the image by \.dockerignore/,
      ],
      [
        "a README without its Docker Compose section",
        (files) => ({ ...files, readme: files.readme.replace("\n## Docker Compose\n", "\n## Containers\n") }),
        /no "## Docker Compose" section/,
      ],
    ];

    it.each(breakages)("%s", async (_name, breakFiles, expected) => {
      const problems = await problemsOf(breakFiles(realFiles()));
      expect(
        problems.some((problem) => expected.test(problem)),
        problems.join("\n"),
      ).toBe(true);
    });
  });

  it("reads .dockerignore the way Docker does", () => {
    const ignore = "node_modules\n*.log\nbench\n!bench/keep.ts\ndocs/**/*.png\n";
    expect(isIgnored(ignore, "node_modules/ajv/package.json")).toBe(true);
    expect(isIgnored(ignore, "engine/node_modules")).toBe(false);
    expect(isIgnored(ignore, "run.log")).toBe(true);
    expect(isIgnored(ignore, "logs/run.log")).toBe(false); // `*` does not cross a directory
    expect(isIgnored(ignore, "bench/run.ts")).toBe(true);
    expect(isIgnored(ignore, "bench/keep.ts")).toBe(false);
    expect(isIgnored(ignore, "docs/images/a/b.png")).toBe(true);
    expect(isIgnored(ignore, "engine/main.ts")).toBe(false);
  });

  it("interpolates the way Compose does", () => {
    expect(interpolate("${TOKEN:-dev-token}")).toBe("dev-token");
    expect(interpolate("${TOKEN:-dev-token}", { TOKEN: "" })).toBe("dev-token");
    expect(interpolate("${TOKEN-dev-token}", { TOKEN: "" })).toBe("");
    expect(interpolate("${TOKEN:-dev-token}", { TOKEN: "mine" })).toBe("mine");
    expect(interpolate("$$HOME and ${UNSET}")).toBe("$HOME and ");
  });
});
