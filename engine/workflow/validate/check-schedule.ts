/** A schedule trigger's cron pattern and time zone. */
import { Cron } from "croner";
import type { JsonPath } from "../load.ts";
import type { DocumentCheck } from "./document-check.ts";
import { quote } from "./wording.ts";

export function checkCron(check: DocumentCheck, cron: unknown, path: JsonPath): void {
  if (typeof cron !== "string") return;
  const invalid = (reason: string) =>
    check.atValue("InvalidCron", path, `${check.where(path)}: ${quote(cron)} ${reason}`);
  const fix = "write 5 fields (minute hour day month weekday), or 6 with seconds first";
  const fields = cron.trim().split(/\s+/).length;
  if (!cron.trim().startsWith("@") && fields !== 5 && fields !== 6)
    return invalid(`has ${fields} fields: ${fix}`);
  let job: Cron | undefined;
  try {
    job = new Cron(cron, { paused: true, mode: "5-or-6-parts" });
    // A fixed start keeps this pure: a pattern with no next time from 2000 never fires at all.
    if (job.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) invalid("never fires: no date matches it");
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replace(/^CronPattern: /, "");
    invalid(`is not a valid cron expression (${reason.charAt(0).toLowerCase()}${reason.slice(1)}); ${fix}`);
  } finally {
    job?.stop();
  }
}

export function checkTimezone(check: DocumentCheck, timezone: unknown, path: JsonPath): void {
  if (typeof timezone !== "string") return;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    check.atValue(
      "InvalidTimezone",
      path,
      `${check.where(path)}: ${quote(timezone)} is not an IANA time zone; write a name like Europe/Berlin or UTC`,
    );
  }
}
