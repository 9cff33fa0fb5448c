/**
 * Unit, integration and end-to-end suites. Test files run two at a time (the machines have 2 cores): each
 * integration/e2e file starts its own MinIO on a free port, its own file:// backend and uniquely named stacks, so
 * files never share a server or a state. ts-jest only transpiles (isolatedModules in tsconfig.json): `npm test`
 * type-checks everything with tsc first, so checking each test file again would only cost time.
 */
module.exports = {
  preset: "ts-jest",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  testTimeout: 600000,
  maxWorkers: 2,
  verbose: true,
  // Idle keep-alive sockets of the SDK clients hold the event loop for seconds after the last test; exiting
  // also runs harness/minio.ts's exit hook, which takes down any MinIO a failed test left running.
  forceExit: true,
};
