export * from "./settings.ts";
export { main as runCommandLine, ExitCode } from "./cli.ts";
