/** Unit, integration and end-to-end suites; integration and e2e start their own MinIO and run one file at a time. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  testTimeout: 600000,
  maxWorkers: 1,
  verbose: true,
};
