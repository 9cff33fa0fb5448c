/**
 * Unit, integration and end-to-end suites. Test files run two at a time, one per core (three at a time was
 * measured no faster: 15.1 min against 15.4, each file slower by half): each integration/e2e file starts its own
 * MinIO on a free port, its own file:// backend and uniquely named stacks, so files never share a server or a
 * state. ts-jest only transpiles (isolatedModules in tsconfig.json): `npm test` type-checks everything with tsc
 * beside it, so checking each test file again would only cost time.
 */
module.exports = {
  preset: "ts-jest",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  testTimeout: 600000,
  maxWorkers: 2,
  // Longest files first (tests/sequencer.js): a fresh clone has no cached durations.
  testSequencer: "<rootDir>/tests/sequencer.js",
  verbose: true,
  // Idle keep-alive sockets of the SDK clients hold the event loop for seconds after the last test; exiting
  // also runs harness/minio.ts's exit hook, which takes down any MinIO a failed test left running.
  forceExit: true,
};
