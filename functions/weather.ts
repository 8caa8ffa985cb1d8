// The weather pipeline, once one monolith, split into functions (workflows/weather-harvest.yaml
// reads the stations on a schedule and emits the raw readings on the queue subject weather.raw;
// workflows/weather-process.yaml, triggered by that queue, cleans and stores them). Serve them
// with `baton worker functions/weather.ts`; the store writes to BATON_WEATHER_DIR.
import { createHash } from "node:crypto";
import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { BatonError, defineFunction } from "../sdk/index.ts";

export interface Reading {
  station: string;
  /** `null` when the sensor gave nothing. */
  celsius: number | null;
  at?: string;
}

/**
 * `{ stations }` → `{ readings }`: one raw reading per station. A stand-in for the stations'
 * HTTP APIs: a reading derived from the station and the minute, now and then missing or absurd,
 * as real sensors are.
 */
export const weatherRead = defineFunction({
  name: "weather-read",
  input: {
    type: "object",
    required: ["stations"],
    properties: { stations: { type: "array", items: { type: "string" }, minItems: 1 } },
  },
  handler: (input: { stations: string[] }) => {
    const at = new Date();
    at.setUTCSeconds(0, 0);
    return {
      readings: input.stations.map((station): Reading => {
        const byte = createHash("sha256").update(`${station}@${at.toISOString()}`).digest()[0] ?? 0;
        if (byte < 16) return { station, celsius: null, at: at.toISOString() };
        if (byte > 248) return { station, celsius: 999, at: at.toISOString() };
        return { station, celsius: Math.round((byte / 255) * 400 - 100) / 10, at: at.toISOString() };
      }),
    };
  },
});

/** `{ readings }` → `{ readings, dropped }`: readings without a plausible temperature are dropped; the rest rounded to 0.1°. */
export const weatherClean = defineFunction({
  name: "weather-clean",
  input: {
    type: "object",
    required: ["readings"],
    properties: { readings: { type: "array", items: { type: "object", required: ["station"] } } },
  },
  handler: (input: { readings: Reading[] }) => {
    const readings = input.readings
      .filter(
        (reading) => typeof reading.celsius === "number" && reading.celsius >= -90 && reading.celsius <= 60,
      )
      .map((reading) => ({ ...reading, celsius: Math.round(reading.celsius! * 10) / 10 }));
    return { readings, dropped: input.readings.length - readings.length };
  },
});

/**
 * `{ harvestedAt?, readings }` → `{ stored }`: appends the readings to
 * `BATON_WEATHER_DIR/readings.jsonl`, one line per reading with the step's idempotency key, so a
 * reader can tell a replay (which the effect ledger prevents) from new data.
 */
export const weatherStore = defineFunction({
  name: "weather-store",
  effect: true,
  async handler(input: { harvestedAt?: string; readings: Reading[] }, ctx) {
    const dir = process.env.BATON_WEATHER_DIR;
    if (dir === undefined || dir === "")
      throw new BatonError(
        "WeatherDirMissing",
        "set BATON_WEATHER_DIR to the directory weather-store writes to",
      );
    await mkdir(dir, { recursive: true });
    const lines = input.readings.map((reading) =>
      JSON.stringify({ ...reading, harvestedAt: input.harvestedAt, key: ctx.idempotencyKey }),
    );
    if (lines.length > 0) await appendFile(join(dir, "readings.jsonl"), `${lines.join("\n")}\n`);
    return { stored: lines.length };
  },
});
