import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into the Python package, which the API serves at /console/.
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "../deltaomega/console/static",
    emptyOutDir: true,
    sourcemap: false,
  },
});
