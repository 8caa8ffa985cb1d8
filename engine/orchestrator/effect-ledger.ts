/**
 * The engine's side of the effect ledger (sdk/effect-ledger.ts, shared with workers): a
 * completed effect step run is never dispatched again; the engine answers from the ledger.
 */
export { EffectLedger } from "../../sdk/effect-ledger.ts";
export type {
  EffectLedgerEntry as LedgerEntry,
  EffectLedgerAttempt as LedgerAttempt,
} from "../../sdk/protocol.ts";
