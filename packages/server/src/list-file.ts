/**
 * A broker's file holding a JSON list (instruments, account groups): its text read and checked against the list's
 * schema, the first problem named by entry and field ("entry 3.digits: Expected integer"), so that a bad entry stops
 * the start saying where it is.
 */
import type { TSchema } from "@sinclair/typebox";
import { readFileSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";

/**
 * The file's list, or the first problem with it: not JSON, or an entry or field the schema refuses, followed by
 * `expected` (what the file must hold, in a few words).
 */
export function readJsonList(
  text: string,
  schema: TSchema,
  expected: string,
): { list: unknown[] } | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { problem: `not JSON: ${(error as Error).message}` };
  }
  const [first] = Value.Errors(schema, parsed);
  if (!first) return { list: parsed as unknown[] };
  const field = first.path === "" ? "the file" : first.path.replace(/^\/(\d+)/, "entry $1").replaceAll("/", ".");
  return { problem: `${field}: ${first.message} (${expected})` };
}

/**
 * The file's entries as `parse` reads its text; a file that cannot be read, or that `parse` refuses, is `failure` with
 * the file named in its message.
 */
export function readListFile<T>(file: string, parse: (text: string) => T, failure: (message: string) => Error): T {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw failure(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    return parse(text);
  } catch (error) {
    throw failure(`${file}: ${(error as Error).message}`);
  }
}
