export * from "./journal.ts";
export * from "./checksum.ts";
export { eventAccountId } from "./records.ts";
export * from "./sqlite-journal.ts";
export * from "./postgres-journal.ts";
export * from "./create-journal.ts";
