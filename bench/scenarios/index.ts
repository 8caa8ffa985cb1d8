/** Every scenario, in the order a full run takes them (the floors first: later rows read them). */
import type { Scenario } from "../lib/scenario.ts";
import { chain10 } from "./chain-10.ts";
import { coldStart } from "./cold-start.ts";
import { fanout } from "./fanout.ts";
import { floorCore } from "./floor-core.ts";
import { floorDurable } from "./floor-durable.ts";
import { overhead } from "./overhead.ts";
import { peers } from "./peers.ts";
import { recovery, recoveryTakeover } from "./recovery.ts";
import { starts } from "./starts.ts";
import { steps } from "./steps.ts";
import { cluster } from "./cluster.ts";
import { tracing } from "./tracing.ts";
import { timers } from "./timers.ts";
import { waiting } from "./waiting.ts";

export const scenarios: readonly Scenario[] = [
  floorCore,
  floorDurable,
  chain10,
  overhead,
  starts,
  steps,
  fanout,
  waiting,
  timers,
  recovery,
  recoveryTakeover,
  coldStart,
  tracing,
  peers,
  cluster,
];
