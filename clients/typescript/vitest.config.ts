import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 30000,
    hookTimeout: 30000,
    // Each file starts its own hubs; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
