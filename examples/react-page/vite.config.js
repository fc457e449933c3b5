import { defineConfig } from "vite";

export default defineConfig({
  // @wshub/client comes from ../../clients/typescript, which has its own React (for its tests):
  // the page and the hooks must share one.
  resolve: { dedupe: ["react", "react-dom"] },
});
