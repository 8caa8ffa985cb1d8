// Which module called a function, read from V8's structured call sites. A function's handler
// runs in an isolate that imports the defining module afresh, so `defineFunction` must know
// that module's URL without asking the user for `import.meta.url` every time.
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * The URL of the module whose code called `callee`, or `undefined` when the caller is not a
 * file (a REPL, `eval`). Under Node and tsx a call site's file name is already a `file:` URL;
 * under vitest it is an absolute path.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- any function can be the cut-off frame
export function callerModuleUrl(callee: Function): string | undefined {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- saved to be put back as it was, never called here
  const original = Error.prepareStackTrace;
  let callSites: NodeJS.CallSite[] = [];
  try {
    Error.prepareStackTrace = (_error, sites) => sites;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, callee);
    callSites = Array.isArray(holder.stack) ? (holder.stack as NodeJS.CallSite[]) : [];
  } finally {
    Error.prepareStackTrace = original;
  }
  const fileName = callSites[0]?.getFileName();
  return fileName === undefined || fileName === null ? undefined : toModuleUrl(fileName);
}

/** A file URL or an absolute path as a `file:` URL without query or hash; `undefined` for anything else. */
export function toModuleUrl(fileName: string): string | undefined {
  if (fileName.startsWith("file:")) {
    const url = new URL(fileName);
    url.search = "";
    url.hash = "";
    return url.href;
  }
  if (isAbsolute(fileName)) return pathToFileURL(fileName.replace(/[?#].*$/, "")).href;
  return undefined;
}
