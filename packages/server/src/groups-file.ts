/**
 * The broker's account groups (DESIGN.md section 3: "margin-call and stop-out levels come from the account's group"):
 * a JSON list named by BOURSE_GROUPS_FILE, checked at start so that a bad entry stops it with the entry and field
 * named. Unset, the two groups the engine ships (`DEFAULT_GROUPS`: standard, pro).
 *
 * A group an account is in cannot leave the file while the account is: the engine judges every account at its
 * group's levels, so `checkAccountGroups` refuses the start instead (move the accounts first, with the admin API).
 */
import { DEFAULT_GROUPS, type AccountGroup } from "@bourse/core";
import { Type, type Static } from "@sinclair/typebox";
import { readJsonList, readListFile } from "./list-file.ts";

/** Groups a file may define: each is looked up per risk check, and a broker has a handful. */
export const MAX_GROUPS = 100;
/** The highest level a group may set, in percent of margin level. */
const MAX_LEVEL_PERCENT = 10_000;
/** Letters, digits, `.`, `_` and `-`, as the admin API and the account views carry it. */
const GROUP_NAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$";

export const GroupFileEntry = Type.Object(
  {
    name: Type.String({ pattern: GROUP_NAME_PATTERN }),
    marginCallLevelPercent: Type.Integer({ minimum: 1, maximum: MAX_LEVEL_PERCENT }),
    stopOutLevelPercent: Type.Integer({ minimum: 0, maximum: MAX_LEVEL_PERCENT }),
  },
  { additionalProperties: false },
);
type GroupFileEntry = Static<typeof GroupFileEntry>;

const GroupsFile = Type.Array(GroupFileEntry, { minItems: 1, maxItems: MAX_GROUPS });

export class GroupsFileError extends Error {
  override readonly name = "GroupsFileError";
}

/** The groups a file's text defines, checked: unique names, and each stop-out level below its margin-call level. */
export function parseGroups(text: string): AccountGroup[] {
  const read = readJsonList(
    text,
    GroupsFile,
    `a list of 1 to ${MAX_GROUPS} groups: name, marginCallLevelPercent, stopOutLevelPercent`,
  );
  if ("problem" in read) throw new GroupsFileError(read.problem);
  const seen = new Set<string>();
  return (read.list as GroupFileEntry[]).map((entry, index) => {
    const where = `entry ${index} (${entry.name})`;
    if (seen.has(entry.name)) throw new GroupsFileError(`${where}: the group is defined twice`);
    seen.add(entry.name);
    // At or below the stop-out level an account is closed out; a margin call must come before it, or never warns.
    if (entry.stopOutLevelPercent >= entry.marginCallLevelPercent)
      throw new GroupsFileError(
        `${where}: stopOutLevelPercent (${entry.stopOutLevelPercent}) must be below marginCallLevelPercent (${entry.marginCallLevelPercent})`,
      );
    return { ...entry };
  });
}

export function readGroupsFile(file: string): AccountGroup[] {
  return readListFile(file, parseGroups, (message) => new GroupsFileError(message));
}

/** The group new accounts join: the one named, else `standard` when defined, else the first. */
export function defaultGroupOf(groups: readonly AccountGroup[], named: string | undefined): string {
  if (named !== undefined) {
    if (!groups.some((group) => group.name === named))
      throw new GroupsFileError(
        `the default group "${named}" is not among the groups (${groups.map((group) => group.name).join(", ")})`,
      );
    return named;
  }
  return groups.some((group) => group.name === "standard") ? "standard" : groups[0]!.name;
}

/** The groups the engine ships, as a file would define them: `bourse groups` prints them, for a broker's file. */
export function defaultGroupsFileText(): string {
  return `${JSON.stringify(DEFAULT_GROUPS, null, 2)}\n`;
}

/** How many accounts of each missing group `checkAccountGroups` names, at most. */
const ACCOUNTS_NAMED_PER_GROUP = 5;

/** Refuses groups that leave out a group accounts are in (found after recovery, before the engine serves). */
export function checkAccountGroups(
  accounts: Iterable<{ readonly id: number; readonly group: string }>,
  groups: readonly AccountGroup[],
): void {
  const defined = new Set(groups.map((group) => group.name));
  const missing = new Map<string, number[]>();
  for (const account of accounts) {
    if (defined.has(account.group)) continue;
    let ids = missing.get(account.group);
    if (!ids) missing.set(account.group, (ids = []));
    ids.push(account.id);
  }
  if (missing.size === 0) return;
  const problems = [...missing].map(([group, ids]) => {
    const named = ids.slice(0, ACCOUNTS_NAMED_PER_GROUP).join(", ");
    const more = ids.length > ACCOUNTS_NAMED_PER_GROUP ? ` and ${ids.length - ACCOUNTS_NAMED_PER_GROUP} more` : "";
    return `group "${group}" holds account${ids.length === 1 ? "" : "s"} ${named}${more}`;
  });
  throw new GroupsFileError(
    `the groups leave out groups that accounts are in: ${problems.join("; ")} (keep the group in the file until its ` +
      "accounts are moved to another with POST /admin/v1/accounts/{login})",
  );
}
