// `noop` returns its input: the function of the benchmarks, where the worker's own cost is what is measured.
import { defineFunction } from "../sdk/index.ts";

export default defineFunction({
  name: "noop",
  handler: (input: unknown) => input,
});
