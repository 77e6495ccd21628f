/**
 * A broker's file holding a JSON list (instruments, account groups): its text read and checked against the list's
 * schema, the first problem named by entry and field ("entry 3.digits: Expected integer"), so that a bad entry stops
 * the start saying where it is.
 */
import type { TSchema } from "@sinclair/typebox";
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
