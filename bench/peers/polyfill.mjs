// Promise.withResolvers (Node 22+), which the Restate SDK needs, for the Restate service process on Node 20 only.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new this((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
};
