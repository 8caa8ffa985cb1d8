// A stand-in for a long task behind a web page (workflows/train-model.yaml, POST /train): it
// "trains" for `epochs` epochs of `msPerEpoch` each, reporting its progress after every one, and
// returns made-up metrics. Serve it with `baton worker functions/train.ts` (baton dev does).
import { setTimeout as sleepFor } from "node:timers/promises";
import { defineFunction } from "../sdk/index.ts";

export const trainModel = defineFunction({
  name: "train-model",
  input: {
    type: "object",
    required: ["epochs"],
    properties: {
      epochs: { type: "integer", minimum: 1, maximum: 1000 },
      msPerEpoch: { type: "integer", minimum: 0, maximum: 60_000 },
    },
  },
  async handler(input: { epochs: number; msPerEpoch?: number }, ctx) {
    const msPerEpoch = input.msPerEpoch ?? 300;
    let loss = 1;
    ctx.progress(0, "starting");
    for (let epoch = 1; epoch <= input.epochs; epoch++) {
      await sleepFor(msPerEpoch, undefined, { signal: ctx.signal });
      loss *= 0.8;
      ctx.progress(epoch / input.epochs, `epoch ${epoch}/${input.epochs}, loss ${loss.toFixed(3)}`);
    }
    return {
      epochs: input.epochs,
      loss: Number(loss.toFixed(4)),
      accuracy: Number((1 - loss / 2).toFixed(4)),
    };
  },
});
