/**
 * Named points where a test can make an engine or API process die at once (SIGKILL to itself), to
 * prove that nothing is lost and no effect runs twice whatever moment a crash picks:
 *
 * - `after-write`: the record (with its outbox and history) is written, nothing sent yet;
 * - `mid-send`: the commands are sent, the history is not (or not acknowledged);
 * - `before-ack`: everything sent, the events not acknowledged;
 * - `package-after-bundle`, `package-after-version`: an upload of a function package (the API
 *   process) has stored the bundle, or the bundle and the version, not the head
 *   (engine/functions/package-store.ts).
 *
 * `BATON_TEST_CRASH_AT=<point>[:<n>]` kills the process the n-th time (default 1st) it passes
 * the point. Unset (always, outside tests), a check is one comparison.
 */
const [armedPoint, nth] = (process.env.BATON_TEST_CRASH_AT ?? "").split(":");
let passes = 0;
const crashOn = Number(nth ?? 1) || 1;

export type CrashPointName =
  "after-write" | "mid-send" | "before-ack" | "package-after-bundle" | "package-after-version";

export function crashPointArmed(point: CrashPointName): boolean {
  return armedPoint === point;
}

export function crashPoint(point: CrashPointName): void {
  if (armedPoint !== point) return;
  if (++passes < crashOn) return;
  process.stderr.write(`${JSON.stringify({ level: "warn", message: "crash point reached", point })}\n`);
  process.kill(process.pid, "SIGKILL");
}
