import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "**/dist/**", "data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  {
    // Plain JavaScript entry points run on Node.
    files: ["**/*.mjs"],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
  {
    // The core is pure: no clock reads, no randomness, no IO (DESIGN.md section 2).
    files: ["packages/core/src/**/*.ts"],
    rules: {
      "no-restricted-globals": [
        "error",
        "Date",
        "setTimeout",
        "setInterval",
        "setImmediate",
        "performance",
        "process",
        "fetch",
        "crypto",
      ],
      "no-restricted-properties": [
        "error",
        { object: "Math", property: "random", message: "The core is deterministic: randomness is an input." },
      ],
      "no-restricted-imports": [
        "error",
        { patterns: ["node:*", "fs", "path", "os", "net", "http", "crypto", "child_process"] },
      ],
    },
  },
);
