/** Unit, integration and end-to-end suites; integration and e2e start their own MinIO and run one file at a time. */
module.exports = {
  preset: "ts-jest",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.check.json" }] },
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  testTimeout: 600000,
  maxWorkers: 1,
  verbose: true,
  // Idle keep-alive sockets of the SDK clients hold the event loop for seconds after the last test; exiting
  // also runs harness/minio.ts's exit hook, which takes down any MinIO a failed test left running.
  forceExit: true,
};
