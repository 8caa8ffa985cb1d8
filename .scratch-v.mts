import { readFileSync } from "node:fs";
import { validateWorkflowText } from "./engine/workflow/validate.ts";
const file = process.argv[2]!;
const r = validateWorkflowText(readFileSync(file, "utf8"));
for (const p of r.problems) console.log(`${p.line}:${p.column}  ${p.code.padEnd(18)} ${p.path}: ${p.message}`);
console.log("workflows", r.workflows.length, "docs", r.documents.length);
