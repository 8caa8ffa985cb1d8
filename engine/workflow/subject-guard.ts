/**
 * The subjects a workflow may publish to, wait on or listen on. Baton's own traffic lives under
 * `baton.` and NATS's under `$JS.`, `$KV.`, `$O.`, `$SYS.` and `_INBOX.`: a workflow that could
 * reach them could forge engine events, answer another client's request or purge a stream. The
 * validator refuses such subjects when they are written out; this guard refuses them again at
 * run time, where an expression (fed by the workflow's input, say) may have produced one, and
 * wherever a subject is used (the emit and receive steps, their dispatch, queue triggers).
 */

/** First tokens no workflow subject may have. */
export const reservedSubjectTokens = ["baton", "$JS", "$KV", "$O", "$SYS", "_INBOX"] as const;

/** The reserved prefix `subject` is under (`baton.`), if any. */
export function reservedPrefixOf(subject: string): string | undefined {
  const first = subject.split(".", 1)[0];
  return reservedSubjectTokens.find((token) => token === first)?.concat(".");
}

/**
 * Why `subject` may not be used, or `undefined` when it may. `wildcards`: a pattern to listen on
 * (queue triggers), where `*` and `>` are whole tokens, `>` last, and the first token must not
 * be a wildcard (it would match the reserved subjects too). Otherwise a concrete subject.
 */
export function refuseSubject(subject: string, options: { wildcards: boolean } = { wildcards: false }) {
  if (subject === "") return "is empty";
  if (/\s/.test(subject)) return "has whitespace";
  const tokens = subject.split(".");
  if (tokens.some((token) => token === "")) return "has an empty token";
  const reserved = reservedPrefixOf(subject);
  if (reserved) return `is under "${reserved}", which is reserved for Baton and NATS`;
  for (const [index, token] of tokens.entries()) {
    if (!token.includes("*") && !token.includes(">")) continue;
    if (!options.wildcards) return "has a wildcard (* or >): name one concrete subject";
    if (token !== "*" && token !== ">") return `has "${token}": * and > must be whole tokens`;
    if (token === ">" && index !== tokens.length - 1) return 'has ">" before the end';
    if (index === 0)
      return "starts with a wildcard, so it would match the subjects reserved for Baton and NATS";
  }
  return undefined;
}
