import { it } from "vitest";
import { where } from "../fixtures/worker/exp-def.ts";
it("x", () => { console.log(JSON.stringify(where()), import.meta.url, process.execArgv); });
