/**
 * One engine per journal. Two servers started on one data directory (or one PostgreSQL database) each ran an
 * engine of their own: each refused the other's next write (503), served balances the other had changed
 * without knowing it (an order refused NO_MONEY after a deposit through the other), and kept serving sessions
 * the other had logged out. The second now refuses to start, naming the reason.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { signUp, startTestServer } from "./helpers.ts";

it("a second server on the same data directory refuses to start while the first runs, and starts once it stopped", async () => {
  const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-one-writer-"));
  try {
    const first = await startTestServer({ dataDirectory });
    try {
      await signUp(first);
      await expect(startTestServer({ dataDirectory })).rejects.toThrow(/another Bourse engine is writing the journal/);
      // The first is untouched by the attempt.
      await signUp(first);
    } finally {
      await first.close();
    }
    const second = await startTestServer({ dataDirectory });
    try {
      await signUp(second);
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dataDirectory, { recursive: true, force: true });
  }
});
