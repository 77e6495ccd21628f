/**
 * What both drivers' migration runners (sqlite-migrations.ts, postgres-migrations.ts) share: what they report having
 * applied, and what they answer when a schema is not this build's.
 */

/**
 * A migration a runner applied in this open: its number and name, so `bourse migrate` can say what it did (it said
 * "schema up to date" whether it had applied ten migrations or none: found by the audit of an operator's journey).
 */
export interface AppliedMigration {
  readonly version: number;
  readonly name: string;
}

/** A schema newer than this build: an older build must not run on it. `subject`: "the database", "schema bourse". */
export function schemaAhead(subject: string, version: number, known: number): Error {
  return new Error(`${subject} is at schema version ${version}, newer than this build knows (${known}): upgrade it`);
}

/**
 * A schema this build would migrate, met by an inspection (`bourse verify`, `bourse journal`), which may run beside a
 * server and so changes no schema: it migrated the database under the running server, whose statements may no longer
 * fit it (found by the audit of durability of 7 December).
 */
function schemaBehind(subject: string, version: number, known: number): Error {
  return new Error(
    `${subject} is at schema version ${version} and this build at ${known}: an inspection does not migrate it; stop the server and run \`bourse migrate\` first`,
  );
}

/** An inspection's rule, for both drivers: the schema must be exactly this build's, neither ahead nor behind. */
export function assertInspectable(subject: string, version: number, known: number): void {
  if (version > known) throw schemaAhead(subject, version, known);
  if (version < known) throw schemaBehind(subject, version, known);
}
