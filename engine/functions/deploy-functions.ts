/**
 * Deploys a checked project's function packages through the API (`PUT /v1/functions/{name}`),
 * skipping those whose latest version already has the same digest, environment and scale: what
 * `baton apply` and `baton dev` do with a project file (docs/functions.md).
 */
import type { Transport } from "../../sdk/client/transport.ts";
import { BatonApiError } from "../../sdk/client/errors.ts";
import { parseDuration } from "../workflow/duration.ts";
import { packageContentType } from "./package-archive.ts";
import type { PlannedFunction } from "./project.ts";

interface DeployedView {
  name: string;
  version: number;
  digest: string;
  environment: string;
  scale: { minScale: number; maxScale: number; concurrency: number; idle: string };
}

export interface FunctionDeployed {
  fn: PlannedFunction;
  version: number;
  /** `unchanged` (not uploaded), or the API's `baton-deploy-outcome`. */
  outcome: string;
}

export async function deployFunctions(
  api: Transport,
  functions: readonly PlannedFunction[],
  onDeployed: (deployed: FunctionDeployed) => void,
): Promise<void> {
  for (const fn of functions) {
    let current: DeployedView | undefined;
    try {
      current = (await api.request("GET", `/v1/functions/${fn.name}`)).body as DeployedView;
    } catch (error) {
      if (!(error instanceof BatonApiError && error.status === 404)) throw error;
    }
    if (
      current !== undefined &&
      current.digest === fn.digest &&
      current.environment === fn.environment &&
      current.scale.minScale === fn.query.minScale &&
      current.scale.maxScale === fn.query.maxScale &&
      current.scale.concurrency === fn.query.concurrency &&
      parseDuration(current.scale.idle) === fn.scale.idleMs
    ) {
      onDeployed({ fn, version: current.version, outcome: "unchanged" });
      continue;
    }
    const answer = await api.request("PUT", `/v1/functions/${fn.name}`, {
      bytes: fn.bundle,
      contentType: packageContentType(fn.bundle),
      query: fn.query,
    });
    const deployed = answer.body as DeployedView;
    onDeployed({
      fn,
      version: deployed.version,
      outcome: answer.headers.get("baton-deploy-outcome") ?? "deployed",
    });
  }
}
