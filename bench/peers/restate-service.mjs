// The Restate side of the `peers` benchmark: a chain of N steps as N separate service calls.
// `Chain/run` calls `Step/noop` once per step, awaiting each, passing the output along; every
// call is an invocation of its own that Restate journals. Started as
// `node --import ./polyfill.mjs restate-service.mjs`; prints `listening <port>` once it serves
// (HTTP/2 on a random port), and the benchmark registers it with restate-server's admin API.
import * as restate from "@restatedev/restate-sdk";

const step = restate.service({
  name: "Step",
  handlers: { noop: async (_ctx, input) => input },
});

const chain = restate.service({
  name: "Chain",
  handlers: {
    /** `{ steps, payload }` → the payload, after `steps` calls of Step/noop. */
    run: async (ctx, { steps, payload }) => {
      let output = payload;
      for (let i = 0; i < steps; i++) output = await ctx.serviceClient(step).noop(output);
      return output;
    },
  },
});

const port = await restate
  .endpoint()
  .bind(step)
  .bind(chain)
  // Only warnings and errors: the default logs every invocation.
  .setLogger((meta, message, ...rest) => {
    if (meta.level === "warn" || meta.level === "error") console.error(message, ...rest);
  })
  .listen(0);
console.log(`listening ${port}`);
