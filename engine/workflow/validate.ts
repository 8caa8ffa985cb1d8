/**
 * Validation of workflow documents: every problem at once, each with a stable code, a path, and
 * the line and column where it was written. Pure: no I/O, the same text gives the same problems.
 *
 * How the work is split: the language's JSON Schema (`schema/workflow.schema.json`, the one
 * editors use) checks the closed shapes — fields, types, enums, ranges, name patterns. The
 * validator walks the document itself and hands ajv one node at a time: the document without
 * its steps and triggers, then each step against the definition of its own kind, each trigger
 * against its source's. A step never meets a `oneOf` over eleven kinds, so ajv's errors map to
 * one problem per mistake. Unions and everything JSON Schema cannot say (durations, expressions,
 * subjects, cron, step references, unique names, switch and receive rules) are checked here in
 * code; the definitions that code checks are replaced in the copy of the schema ajv sees.
 *
 * Where each part lives, under `validate/`: `validate-text.ts` and `validate-document.ts` (the
 * entries), `language-schema.ts` (the schema as ajv sees it), `schema-errors.ts` (ajv's errors →
 * problems), `check-steps.ts` and `check-trigger.ts` (the walk), `check-*.ts` for the values
 * checked in code, and `document-check.ts` (what one document's validation accumulates).
 */
export { validateWorkflowText, type TextValidation } from "./validate/validate-text.ts";
export { validateWorkflowValue, type DocumentValidation } from "./validate/validate-document.ts";
