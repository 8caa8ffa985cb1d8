#!/usr/bin/env node
// Runs the test suite with vitest and ends with one summary line that CI can read:
//   N passed, N failed
// (skipped tests, if any, are counted on the line before it).
// Usage: node scripts/run-tests.mjs [vitest args...]   (e.g. test/unit, -t "compile")
//
// With no arguments (the whole suite), it runs vitest twice: every file but the ones in `alone`,
// two at a time as vitest.config.ts says, then the files of `alone` one after another with
// nothing else running. Those start a 3-node nats-server cluster and kill its nodes: on a 2-core
// machine shared with another test file, the nodes' Raft heartbeats came late enough for the
// cluster to lose its leader for a minute, which is the machine, not what the tests are about.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const vitest = join(root, "node_modules", ".bin", "vitest");
// A private temp file, so that two runs at once do not read each other's results.
const resultsDir = mkdtempSync(join(tmpdir(), "baton-test-results-"));

/** Files run by themselves, after the others (see the comment at the top). */
const alone = [
  "test/system/cluster.test.ts",
  "test/system/cluster-leaders.test.ts",
  "test/integration/replication.test.ts",
];

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

/** Sums the counts of the runs' reports, with the exit code of the whole. */
function finish(runs) {
  let exitCode = 0;
  const total = { passed: 0, failed: 0, skipped: 0 };
  for (const { file, code } of runs) {
    let counts = readCounts(file);
    if (counts === undefined) {
      console.error(
        "run-tests: vitest wrote no JSON report (it crashed or was stopped); counting a failure.",
      );
      counts = { passed: 0, failed: 1, skipped: 0 };
    } else if (code !== 0 && counts.failed === 0) {
      // vitest failed without a failing test: unhandled errors, no test files found, a crash at the end.
      console.error(
        `run-tests: vitest exited with code ${code} although no test failed; counting a failure.`,
      );
      counts = { ...counts, failed: 1 };
    }
    if (exitCode === 0 && code !== 0) exitCode = code;
    total.passed += counts.passed;
    total.failed += counts.failed;
    total.skipped += counts.skipped;
  }
  rmSync(resultsDir, { recursive: true, force: true });
  if (exitCode === 0 && total.failed > 0) exitCode = 1;
  if (total.skipped > 0) console.log(`${total.skipped} skipped (not counted as passed)`);
  report(summaryLine(total));
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

/** Runs vitest with `args`; resolves with its report file and exit code. */
function runVitest(args, name) {
  const file = join(resultsDir, `${name}.json`);
  return new Promise((done) => {
    const child = spawn(
      vitest,
      ["run", "--reporter=default", "--reporter=json", `--outputFile=${file}`, ...args],
      {
        cwd: root,
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
    // Let Ctrl-C or a CI timeout reach vitest, then still print the summary.
    const forward = (signal) => child.kill(signal);
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, forward);
    child.on("error", (error) => {
      console.error(`run-tests: could not start vitest: ${error.message}`);
      done({ file, code: 1 });
    });
    child.on("close", (code, signal) => {
      for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.off(signal, forward);
      done({ file, code: code ?? (signal === null ? 1 : 128 + (signalNumber(signal) ?? 1)) });
    });
  });
}

const args = process.argv.slice(2);
if (args.length > 0) finish([await runVitest(args, "results")]);
else {
  const rest = await runVitest(
    alone.flatMap((file) => ["--exclude", file]),
    "results",
  );
  console.log(`\nrun-tests: now the files that run alone: ${alone.join(", ")}`);
  const solo = await runVitest(["--maxWorkers=1", ...alone], "alone");
  finish([rest, solo]);
}

function signalNumber(signal) {
  const numbers = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal];
}
