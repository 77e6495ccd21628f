/**
 * The one registry of rejection codes. A rejection is a value (never an exception) with a
 * stable code; each face maps it to its own wire shape (Client API `{"error","message"}`,
 * Automation API `{"success":false,"error"}`, stream `error` messages). Codes are never
 * renamed or reused: clients switch on them.
 */
export const RejectionCodes = {
  INVALID_DATA: "The request is malformed or a field is out of range",
  ACCOUNT_NOT_FOUND: "No such trading account",
  ACCOUNT_EXISTS: "A trading account with this login already exists",
  ACCOUNT_DISABLED: "Trading is disabled for this account",
  INVALID_CURRENCY: "The account currency is not supported",
  INVALID_LEVERAGE: "The leverage is out of the allowed range",
  INVALID_GROUP: "No such account group",
  UNKNOWN_SYMBOL: "No such instrument",
  TRADE_DISABLED: "Trading is disabled for this instrument",
  MARKET_CLOSED: "The market is closed",
  NO_QUOTES: "There is no price for this instrument yet",
  INVALID_VOLUME: "The volume is below the minimum, above the maximum or not a multiple of the volume step",
  INVALID_PRICE: "The price is invalid for this order type or the current market",
  INVALID_STOPS: "Stop loss or take profit is invalid or too close to the market",
  INVALID_EXPIRATION: "The expiration is missing, in the past or not allowed for this time in force",
  INVALID_FILL_POLICY: "The time in force is not allowed for this order type",
  INVALID_ORDER_TYPE: "The order type is not supported",
  PRICE_OFF: "The market moved beyond the allowed deviation",
  NO_LIQUIDITY: "There is not enough liquidity to fill the order as requested",
  NO_MONEY: "Insufficient margin",
  INVALID_AMOUNT: "The amount must be a positive number in the account currency",
  ORDER_NOT_FOUND: "No such order",
  ORDER_NOT_MODIFIABLE: "The order is no longer working and cannot be changed",
  POSITION_NOT_FOUND: "No such position",
  DUPLICATE_CLIENT_ORDER_ID: "The client order id was already used for a different order",
  DUPLICATE_REFERENCE: "The reference was already used for a different balance operation of the account",
  NO_CHANGES: "The request changes nothing",
  TOO_MANY_ORDERS: "The limit of working orders for the account is reached",
  TOO_MANY_POSITIONS: "The limit of open positions and working orders for the account is reached",
  TIME_WENT_BACKWARDS: "A command carries a time earlier than the engine's clock",
} as const satisfies Record<string, string>;

export type RejectionCode = keyof typeof RejectionCodes;

export interface Rejection {
  readonly ok: false;
  readonly code: RejectionCode;
  readonly message: string;
}

/** Builds a rejection with the registry's message, or a more specific one. */
export function reject(code: RejectionCode, message?: string): Rejection {
  return { ok: false, code, message: message ?? RejectionCodes[code] };
}

export function isRejectionCode(value: string): value is RejectionCode {
  return Object.prototype.hasOwnProperty.call(RejectionCodes, value);
}
