// A warm pool of isolates. Starting one costs about a hundred milliseconds (a thread, tsx's
// hooks, the function modules), so isolates are kept and reused; one that crashed or was
// terminated is replaced in the background, and idle ones beyond the warm minimum are retired.
import { Isolate, type IsolateReady } from "./isolate.ts";
import { errorFields, type Logger } from "./logger.ts";

/** An isolate's heap limit (old generation) unless BATON_WORKER_HEAP_MB says otherwise, in MB. */
export const defaultIsolateHeapMb = 512;

export interface IsolatePoolOptions {
  readonly modules: readonly string[];
  readonly heapMb: number;
  /** Isolates kept started and idle, ready for the next attempt. */
  readonly minIdle: number;
  /** An idle isolate beyond `minIdle` is retired after this long. */
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
}

interface Warming {
  readonly isolate: Isolate;
  isClaimed: boolean;
}

/**
 * One isolate started before its pool exists: `baton worker MODULE...` knows its modules from its
 * arguments, so the thread boots (and imports them) while the process itself still imports them,
 * loads the NATS client and connects. A worker that learns its modules later (a package worker
 * fetches its bundle first) boots the thread without them (`prebootIsolate`), since Node's own
 * start is most of an isolate's, and names them when it has them. The first pool whose modules
 * and heap match takes it; nobody else does, and a pool that does not match terminates it.
 */
interface Prewarmed {
  /** The modules and heap it was given; `undefined` while prebooted without modules. */
  key: string | undefined;
  readonly heapMb: number;
  readonly isolate: Isolate;
  /** Where its exit is reported once a pool has taken it. */
  set owner(onExit: (isolate: Isolate) => void);
}
let prewarmed: Prewarmed | undefined;
const prewarmKey = (modules: readonly string[], heapMb: number): string =>
  JSON.stringify([[...modules].sort(), heapMb]);

function startPrewarmed(modules: readonly string[] | undefined, heapMb: number): Isolate {
  let owner: ((isolate: Isolate) => void) | undefined;
  const isolate = new Isolate({
    ...(modules === undefined ? {} : { modules }),
    heapMb,
    onExit: (exited) => owner?.(exited),
  });
  isolate.ready.catch(() => {}); // Seen by the pool that takes it, if any.
  prewarmed = {
    key: modules === undefined ? undefined : prewarmKey(modules, heapMb),
    heapMb,
    isolate,
    set owner(onExit: (isolate: Isolate) => void) {
      owner = onExit;
    },
  };
  return isolate;
}

/**
 * Boots an isolate's thread before its modules are known; `prewarmIsolate` or a pool names them.
 * `undefined` when an isolate is prewarmed already.
 */
export function prebootIsolate(heapMb: number): Isolate | undefined {
  return prewarmed === undefined ? startPrewarmed(undefined, heapMb) : undefined;
}

/**
 * The prebooted isolate given its modules, or a new isolate starting with them; `undefined` when
 * one is prewarmed already. A prebooted isolate of another heap size is terminated.
 */
export function prewarmIsolate(modules: readonly string[], heapMb: number): Isolate | undefined {
  const entry = prewarmed;
  if (entry !== undefined && entry.key !== undefined) return undefined;
  if (entry !== undefined && entry.heapMb === heapMb) {
    entry.isolate.load(modules);
    entry.key = prewarmKey(modules, heapMb);
    return entry.isolate;
  }
  if (entry !== undefined) void entry.isolate.terminate();
  return startPrewarmed(modules, heapMb);
}

/** Terminates the prewarmed isolate no pool took (its worker failed to start). */
export async function discardPrewarmed(): Promise<void> {
  const entry = prewarmed;
  prewarmed = undefined;
  await entry?.isolate.terminate();
}

/** The prewarmed isolate if it matches (a prebooted one is given the modules), its exit reported to `onExit` from now on. */
function takePrewarmed(
  modules: readonly string[],
  heapMb: number,
  onExit: (isolate: Isolate) => void,
): Isolate | undefined {
  if (prewarmed?.key === undefined && prewarmed?.heapMb === heapMb) prewarmIsolate(modules, heapMb);
  const entry = prewarmed;
  if (entry === undefined) return undefined;
  prewarmed = undefined;
  if (entry.key !== prewarmKey(modules, heapMb)) {
    void entry.isolate.terminate();
    return undefined;
  }
  entry.owner = onExit;
  return entry.isolate;
}

export class IsolatePool {
  readonly #options: IsolatePoolOptions;
  readonly #idle: { isolate: Isolate; since: number }[] = [];
  readonly #warming = new Set<Warming>();
  readonly #all = new Set<Isolate>();
  readonly #retireTimer: NodeJS.Timeout;
  #isClosed = false;

  constructor(options: IsolatePoolOptions) {
    this.#options = options;
    this.#retireTimer = setInterval(() => this.#retireIdle(), Math.max(options.idleTimeoutMs / 2, 1_000));
    this.#retireTimer.unref();
  }

  /**
   * Starts the warm isolates and resolves with what the first one found in the modules, so that
   * a function its module does not define is refused before any task arrives.
   */
  async start(): Promise<IsolateReady> {
    // One at a time: on a small machine a second isolate booting alongside slows the first.
    const first = this.#warm();
    const ready = await first.isolate.ready;
    this.#topUp();
    return ready;
  }

  /** An isolate ready to run, the idle one used last if any (its caches are warmest). */
  async acquire(): Promise<Isolate> {
    if (this.#isClosed) throw new Error("the isolate pool is closed");
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle.isolate;
    const warming = [...this.#warming].find((entry) => !entry.isClaimed) ?? this.#warm();
    warming.isClaimed = true;
    await warming.isolate.ready;
    return warming.isolate;
  }

  /** Gives an isolate back after an attempt; a dead one is dropped and replaced. */
  release(isolate: Isolate): void {
    if (isolate.isAlive && !isolate.isBusy && !this.#isClosed) {
      this.#idle.push({ isolate, since: Date.now() });
    } else if (isolate.isAlive) {
      void isolate.terminate();
    }
    this.#topUp();
  }

  /** Terminates every isolate (attempts still running end as `terminated`). */
  async close(): Promise<void> {
    this.#isClosed = true;
    clearInterval(this.#retireTimer);
    this.#idle.length = 0;
    await Promise.all([...this.#all].map((isolate) => isolate.terminate()));
  }

  #warm(): Warming {
    const onExit = (exited: Isolate): void => this.#forget(exited);
    const isolate =
      takePrewarmed(this.#options.modules, this.#options.heapMb, onExit) ??
      new Isolate({ modules: this.#options.modules, heapMb: this.#options.heapMb, onExit });
    this.#all.add(isolate);
    const entry: Warming = { isolate, isClaimed: false };
    this.#warming.add(entry);
    isolate.ready.then(
      () => {
        this.#warming.delete(entry);
        if (!entry.isClaimed) this.release(isolate);
      },
      (error: unknown) => {
        this.#warming.delete(entry);
        if (!this.#isClosed) this.#options.logger.error("an isolate failed to start", errorFields(error));
      },
    );
    return entry;
  }

  #forget(isolate: Isolate): void {
    this.#all.delete(isolate);
    const at = this.#idle.findIndex((entry) => entry.isolate === isolate);
    if (at !== -1) this.#idle.splice(at, 1);
    // An idle isolate that died (a handler's stray timer threw after it returned) is replaced too;
    // one that could not even start is not, or a broken set-up would spawn threads in a loop.
    if (isolate.hasStarted) this.#topUp();
  }

  #topUp(): void {
    if (this.#isClosed) return;
    const spare = this.#idle.length + [...this.#warming].filter((entry) => !entry.isClaimed).length;
    for (let i = spare; i < this.#options.minIdle; i++) this.#warm();
  }

  #retireIdle(): void {
    const cutoff = Date.now() - this.#options.idleTimeoutMs;
    while (this.#idle.length > this.#options.minIdle && (this.#idle[0]?.since ?? Infinity) < cutoff) {
      const oldest = this.#idle.shift();
      if (oldest !== undefined) void oldest.isolate.terminate();
    }
  }
}
