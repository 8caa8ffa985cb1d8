#!/usr/bin/env node
// Runs the test suite with vitest and ends with one summary line that CI can read:
//   N passed, N failed
// (skipped tests, if any, are counted on the line before it).
// Usage: node scripts/run-tests.mjs [vitest args...]   (e.g. test/unit, -t "compile")
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const vitest = join(root, "node_modules", ".bin", "vitest");
// A private temp file, so that two runs at once do not read each other's results.
const resultsDir = mkdtempSync(join(tmpdir(), "baton-test-results-"));
const resultsFile = join(resultsDir, "results.json");

/** Counts from vitest's JSON report (Jest's format); undefined when there is no usable report. */
function readCounts(file) {
  if (!existsSync(file)) return undefined;
  let report;
  try {
    report = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
  const files = Array.isArray(report.testResults) ? report.testResults : [];
  // A file that failed to load (syntax error, a throw at import, a failing beforeAll/afterAll)
  // may have no failed test of its own: count it as one failure so it cannot pass unseen.
  const failedFilesWithoutFailedTests = files.filter(
    (result) =>
      result.status === "failed" &&
      !(result.assertionResults ?? []).some((assertion) => assertion.status === "failed"),
  ).length;
  return {
    passed: report.numPassedTests ?? 0,
    failed: (report.numFailedTests ?? 0) + failedFilesWithoutFailedTests,
    skipped: (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0),
  };
}

function summaryLine({ passed, failed }) {
  return `${passed} passed, ${failed} failed`;
}

function finish(exitCode) {
  let counts = readCounts(resultsFile);
  rmSync(resultsDir, { recursive: true, force: true });
  if (counts === undefined) {
    console.error("run-tests: vitest wrote no JSON report (it crashed or was stopped); counting a failure.");
    counts = { passed: 0, failed: 1, skipped: 0 };
  } else if (exitCode !== 0 && counts.failed === 0) {
    // vitest failed without a failing test: unhandled errors, no test files found, a crash at the end.
    console.error(
      `run-tests: vitest exited with code ${exitCode} although no test failed; counting a failure.`,
    );
    counts = { ...counts, failed: 1 };
  }
  if (exitCode === 0 && counts.failed > 0) exitCode = 1;
  if (counts.skipped > 0) console.log(`${counts.skipped} skipped (not counted as passed)`);
  report(summaryLine(counts));
  process.exit(exitCode);
}

/**
 * Prints the summary as the last line, and writes it to BATON_TEST_SUMMARY_FILE when set, so that
 * scripts/test.sh knows the tests ran (and need no summary of its own).
 */
function report(line) {
  console.log(line);
  const file = process.env.BATON_TEST_SUMMARY_FILE;
  if (file) writeFileSync(file, `${line}\n`);
}

if (!existsSync(vitest)) {
  console.error(`run-tests: ${vitest} is missing; run \`npm ci\` first.`);
  report(summaryLine({ passed: 0, failed: 1, skipped: 0 }));
  process.exit(1);
}

const child = spawn(
  vitest,
  ["run", "--reporter=default", "--reporter=json", `--outputFile=${resultsFile}`, ...process.argv.slice(2)],
  { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
);

// Let Ctrl-C or a CI timeout reach vitest, then still print the summary.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}

child.on("error", (error) => {
  console.error(`run-tests: could not start vitest: ${error.message}`);
  finish(1);
});
child.on("close", (code, signal) => {
  finish(code ?? (signal === null ? 1 : 128 + (signalNumber(signal) ?? 1)));
});

function signalNumber(signal) {
  const numbers = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal];
}
