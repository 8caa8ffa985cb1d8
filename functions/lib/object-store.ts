// Reading and writing files in JetStream Object Store buckets, for the image examples
// (functions/thumbnail.ts, functions/image-to-pdf.ts). This module defines no functions: it lives
// in functions/lib/ so that `baton dev`, which serves every module directly in functions/, skips it.
//
// Why images travel by reference: a NATS message holds at most 1 MiB (max_payload), and an
// execution's input, its step outputs and every task carry their JSON through NATS. A photo is
// often larger than that, and a `map` hands its input to every item, so an inline image would be
// copied once per thumbnail size. So the workflows take `{ bucket, name }` of an object in an
// Object Store (which chunks files of any size), and only small results (thumbnails of at most
// 512 px) travel inline.
import { explainCreateError, natsReplicas, reconcileStream } from "../../sdk/replication.ts";
import { connect, type NatsConnection, type ObjectStore } from "nats";
import { BatonError } from "../../sdk/index.ts";

/** Where a file is: an object of a JetStream Object Store bucket. */
export interface ObjectRef {
  readonly bucket: string;
  readonly name: string;
}

/** A stored object as the functions report it. */
export interface StoredObject extends ObjectRef {
  /** Size in bytes. */
  readonly bytes: number;
  /** The object store's digest of the content: `SHA-256=<base64url>`, as `nats object info` shows it. */
  readonly digest: string;
}

/** NATS' rule for bucket names: the bucket becomes the stream `OBJ_<bucket>`. */
export const bucketNamePattern = "^[A-Za-z0-9_-]+$";

/** JSON Schema of an `ObjectRef` in a function's input. */
export const objectRefSchema = {
  type: "object",
  required: ["bucket", "name"],
  properties: {
    bucket: { type: "string", pattern: bucketNamePattern },
    name: { type: "string", minLength: 1 },
  },
  additionalProperties: false,
} as const;

/**
 * Opens a connection to the NATS of the worker (`NATS_URL`, comma-separated servers), runs `use`
 * and closes the connection whatever happens. Cancelling `signal` (the attempt's) closes it at
 * once, which ends whatever read or write was under way.
 */
export async function withNats<T>(signal: AbortSignal, use: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const servers = (process.env.NATS_URL ?? "nats://127.0.0.1:4222").split(",").map((url) => url.trim());
  let nc: NatsConnection;
  try {
    nc = await connect({ servers, name: "baton-image-example" });
  } catch (error) {
    throw new BatonError(
      "StoreUnavailable",
      `cannot connect to NATS at ${servers.join(",")} (${String(error)}); the worker's NATS_URL must point at the NATS server with JetStream that holds the images`,
      { retryable: true, cause: error },
    );
  }
  const closeNow = (): void => void nc.close();
  signal.addEventListener("abort", closeNow, { once: true });
  try {
    return await use(nc);
  } finally {
    signal.removeEventListener("abort", closeNow);
    await nc.close();
  }
}

/**
 * The content of `ref`, refusing objects over `maxBytes`. A missing bucket or object is
 * `ObjectNotFound` (not retryable: trying again will not make it appear). Nothing is created:
 * reading a bucket that does not exist must not make an empty one.
 */
export async function readObject(nc: NatsConnection, ref: ObjectRef, maxBytes: number): Promise<Uint8Array> {
  const where = `object "${ref.name}" of bucket "${ref.bucket}"`;
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info(`OBJ_${ref.bucket}`);
  } catch (error) {
    if (/stream not found/i.test(String(error))) {
      throw new BatonError(
        "ObjectNotFound",
        `there is no object store bucket "${ref.bucket}"; upload the image first (e.g. nats object put ${ref.bucket} <file>)`,
        { details: { ...ref } },
      );
    }
    throw error;
  }
  const store = await nc.jetstream().views.os(ref.bucket);
  const info = await store.info(ref.name);
  if (info === null || info.deleted) {
    throw new BatonError("ObjectNotFound", `there is no ${where}; check the name, or upload it first`, {
      details: { ...ref },
    });
  }
  if (info.size > maxBytes) {
    throw new BatonError(
      "ImageTooLarge",
      `${where} is ${info.size} bytes; at most ${maxBytes} bytes are accepted`,
      { details: { ...ref, bytes: info.size, maxBytes } },
    );
  }
  const data = await store.getBlob(ref.name);
  if (data === null) {
    throw new BatonError("ObjectNotFound", `${where} was deleted while it was being read`, {
      details: { ...ref },
    });
  }
  return data;
}

/**
 * The bucket `name`, created (file storage) when it does not exist yet, with the replica count
 * Baton's other buckets have (`BATON_NATS_REPLICAS`; brought to it when it exists).
 */
export async function openBucket(nc: NatsConnection, name: string): Promise<ObjectStore> {
  const replicas = natsReplicas();
  await reconcileStream(
    await nc.jetstreamManager(),
    `OBJ_${name}`,
    { num_replicas: replicas },
    `object store ${name}`,
  );
  try {
    return await nc
      .jetstream()
      .views.os(name, { description: "Files written by Baton's image examples", replicas: replicas ?? 1 });
  } catch (error) {
    throw explainCreateError(error, `object store ${name}`, replicas);
  }
}

/**
 * Stores `data` as `name` in `store`. Putting a name that exists replaces that object, so an
 * attempt that runs again overwrites what an earlier one wrote instead of adding a copy.
 */
export async function writeObject(
  store: ObjectStore,
  bucket: string,
  name: string,
  data: Uint8Array,
  description: string,
): Promise<StoredObject> {
  const info = await store.putBlob({ name, description }, data);
  return { bucket, name, bytes: info.size, digest: info.digest };
}
