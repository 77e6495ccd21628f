/**
 * What a client reads when a request does not match its schema, on every face: Ajv's errors (HTTP) and TypeBox's
 * (the native stream) become one sentence that names the field and says what it takes, e.g. `action must be one of:
 * buy, sell` or `the body has an unknown field "type"`. Found by the audit of the Automation API of 7 December (sixth
 * session): the seed's errors read "Insufficient margin", ours "body/action must be equal to constant, body/action must
 * be equal to constant, body/action must match a schema in anyOf", and a timeframe's nine constants were not named.
 */
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { DECIMAL_PATTERN } from "./schemas.ts";

/** The words of a JSON schema this module reads. */
interface Schema {
  readonly type?: string | readonly string[];
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly anyOf?: readonly Schema[];
  readonly pattern?: string;
  readonly format?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
}

/** What part of a request a field is in: its name is written alone in a body, else after the part. */
export type RequestPart = "body" | "querystring" | "params" | "headers" | "payload";

const PART_WORDS: Record<RequestPart, string> = {
  body: "the body",
  querystring: "the query string",
  params: "the path",
  headers: "the headers",
  payload: "the payload",
};

/** A field's name from a JSON pointer: `/legs/0/price` is `legs[0].price`; the root is the part itself. */
export function fieldName(part: RequestPart, pointer: string): string {
  if (pointer === "" || pointer === "/") return PART_WORDS[part];
  let name = "";
  for (const segment of pointer.split("/").slice(1)) {
    const key = segment.replace(/~1/g, "/").replace(/~0/g, "~");
    name += /^[0-9]+$/.test(key) ? `[${key}]` : name === "" ? key : `.${key}`;
  }
  return name;
}

function literalText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The one value a schema allows (a `const`, or an `enum` of one), if it is a literal. */
function literalsOf(schema: Schema): readonly unknown[] | undefined {
  if ("const" in schema) return [schema.const];
  return schema.enum;
}

function typeWords(type: string): string {
  switch (type) {
    case "integer":
      return "an integer";
    case "array":
      return "a list";
    case "object":
      return "an object";
    case "null":
      return "null";
    default:
      return `a ${type}`;
  }
}

/** What a schema takes, in words: "one of: M1, M5", "a number or a decimal string such as \"0.10\"". */
export function describeSchema(schema: Schema): string {
  const literals: unknown[] = [];
  const others: string[] = [];
  const gather = (member: Schema) => {
    const values = literalsOf(member);
    if (values !== undefined) literals.push(...values);
    else if (member.anyOf !== undefined) member.anyOf.forEach(gather);
    else others.push(describeOne(member));
  };
  gather(schema);
  const choices = [...(literals.length > 0 ? [literals.map(literalText).join(", ")] : []), ...others];
  if (literals.length === 1 && others.length === 0) return literalText(literals[0]);
  if (literals.length > 0) return `one of: ${choices.join(", or ")}`;
  return [...new Set(others)].join(" or ");
}

const FORMAT_WORDS: Record<string, string> = {
  email: "an email address",
  "date-time": "an ISO 8601 time with its zone",
  uri: "a URL",
};

function describeOne(schema: Schema): string {
  const types = typeof schema.type === "string" ? [schema.type] : (schema.type ?? []);
  if (types.length !== 1) return types.length === 0 ? "a value" : types.map(typeWords).join(" or ");
  const type = types[0]!;
  if (type === "string") {
    if (schema.pattern === DECIMAL_PATTERN) return 'a decimal string such as "0.10"';
    if (schema.pattern === "^[0-9]{1,15}$") return "up to 15 digits";
    if (schema.format !== undefined) return FORMAT_WORDS[schema.format] ?? `a string of the format ${schema.format}`;
    if (schema.pattern !== undefined) return `a string matching ${schema.pattern}`;
    if (schema.minLength !== undefined && schema.maxLength !== undefined)
      return `a string of ${schema.minLength} to ${schema.maxLength} characters`;
    if (schema.maxLength !== undefined) return `a string of at most ${schema.maxLength} characters`;
    if (schema.minLength !== undefined) return `a string of at least ${schema.minLength} characters`;
    return "a string";
  }
  if (type === "integer" || type === "number") {
    const { minimum, maximum, exclusiveMinimum } = schema;
    if (minimum !== undefined && maximum !== undefined) return `${typeWords(type)} from ${minimum} to ${maximum}`;
    if (exclusiveMinimum !== undefined) return `${typeWords(type)} greater than ${exclusiveMinimum}`;
    if (minimum !== undefined) return `${typeWords(type)} of at least ${minimum}`;
    if (maximum !== undefined) return `${typeWords(type)} of at most ${maximum}`;
  }
  return typeWords(type);
}

/** An error of Ajv 8 as Fastify hands it over, with `verbose: true` (the schema that failed). */
export interface AjvError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
  readonly parentSchema?: Schema;
}

/**
 * One sentence for Ajv's errors. Without allErrors, Ajv reports the first failure, or for an anyOf each member's
 * failure and then the anyOf's: the deepest field is the one to name (a union of objects fails inside one of them),
 * and at that field the last error is the outermost (the anyOf, whose schema lists what the field takes).
 */
export function ajvErrorsMessage(part: RequestPart, errors: readonly AjvError[]): string {
  if (errors.length === 0) return `${PART_WORDS[part]} is not valid`;
  const depth = (error: AjvError) => (error.instancePath === "" ? 0 : error.instancePath.split("/").length);
  const deepest = Math.max(...errors.map(depth));
  const error = errors.filter((candidate) => depth(candidate) === deepest).at(-1)!;
  const field = fieldName(part, error.instancePath);
  // An object that fits no member of a union of objects (sign-in by email or by login): each member's own complaint,
  // not "must be an object" (found by the review of 7 December, sixth session).
  if (error.keyword === "anyOf" || error.keyword === "oneOf") {
    const members = errors.filter((other) => other !== error && other.instancePath === error.instancePath);
    if (members.length > 0 && members.every((member) => objectComplaint(member) !== null))
      return `${field} ${[...new Set(members.map((member) => objectComplaint(member)))].join(", or ")}`;
  }
  switch (error.keyword) {
    case "additionalProperties":
      return part === "querystring"
        ? `unknown query parameter "${String(error.params.additionalProperty)}"`
        : `${field} ${objectComplaint(error)}`;
    case "required":
      return part === "querystring"
        ? `the query parameter "${String(error.params.missingProperty)}" is required`
        : `${field} ${objectComplaint(error)}`;
    case "anyOf":
    case "oneOf":
    case "type":
    case "const":
    case "enum":
    case "pattern":
    case "format":
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "minLength":
    case "maxLength":
      if (error.parentSchema !== undefined) return `${field} must be ${describeSchema(error.parentSchema)}`;
  }
  return `${field} ${error.message ?? "is not valid"}`;
}

/** The predicates of an object's two complaints, on both faces. */
const lacksField = (name: string) => `lacks the required field "${name}"`;
const hasUnknownField = (name: string) => `has an unknown field "${name}"`;

/** What an object lacks or has too many of, as a predicate ("lacks the required field …"); null for other errors. */
function objectComplaint(error: AjvError): string | null {
  if (error.keyword === "required") return lacksField(String(error.params.missingProperty));
  if (error.keyword === "additionalProperties") return hasUnknownField(String(error.params.additionalProperty));
  return null;
}

/** One sentence for TypeBox's first error of a stream message's payload. */
export function typeboxErrorMessage(error: ValueError): string {
  const field = fieldName("payload", error.path);
  const schema = error.schema as Schema;
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const slash = error.path.lastIndexOf("/");
      return `${fieldName("payload", error.path.slice(0, slash))} ${hasUnknownField(error.path.slice(slash + 1))}`;
    }
    case ValueErrorType.ObjectRequiredProperty: {
      const slash = error.path.lastIndexOf("/");
      return `${fieldName("payload", error.path.slice(0, slash))} ${lacksField(error.path.slice(slash + 1))}`;
    }
    case ValueErrorType.Union:
    case ValueErrorType.Literal:
    case ValueErrorType.String:
    case ValueErrorType.StringPattern:
    case ValueErrorType.StringFormat:
    case ValueErrorType.StringMinLength:
    case ValueErrorType.StringMaxLength:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.IntegerExclusiveMinimum:
    case ValueErrorType.Number:
    case ValueErrorType.Integer:
    case ValueErrorType.Boolean:
    case ValueErrorType.Null:
    case ValueErrorType.Object:
    case ValueErrorType.Array:
      return `${field} must be ${describeSchema(schema)}`;
  }
  return `${field}: ${error.message}`;
}
