// `sleep-50` waits 50 ms and returns its input: a task that keeps a worker's slot busy, so that a
// backlog of them needs more than one worker (the pool's scale-up row of the cold-start benchmark).
import { defineFunction } from "baton";

export default defineFunction({
  name: "sleep-50",
  handler: async (input) => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return input;
  },
});
