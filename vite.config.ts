// The UI is built from ui/ into ui/dist (tauri.conf.json's frontendDist);
// Vitest runs the UI's tests in jsdom with Tauri's IPC mocked.
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: "ui",
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  test: {
    root: ".",
    include: ["ui/src/**/*.test.ts"],
    environment: "jsdom",
    globals: true,
  },
});
