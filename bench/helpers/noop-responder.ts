// floor.core's no-op responder, a process of its own: answers every request on `bench.noop` with
// the request's bytes. Run by the bench as `node --import tsx bench/helpers/noop-responder.ts`.
import { connect } from "nats";
import { noopSubject } from "./floor-protocol.ts";

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
nc.subscribe(noopSubject, { callback: (_error, message) => message.respond(message.data) });
await nc.flush();
console.log("noop responder ready");
process.on("SIGTERM", () => void nc.close().then(() => process.exit(0)));
