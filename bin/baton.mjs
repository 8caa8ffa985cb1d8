#!/usr/bin/env node
// The `baton` command: registers tsx so Node can load the TypeScript sources, then hands over to the CLI.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../engine/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
