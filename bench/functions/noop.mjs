// `noop` in plain JavaScript, importing Baton by its package name as a project that installed it
// does (Node resolves "baton" to this package's own dist/ through package.json's exports): the
// module of the cold-start benchmark's compiled `baton worker`, with no TypeScript to load.
import { defineFunction } from "baton";

export default defineFunction({
  name: "noop",
  handler: (input) => input,
});
