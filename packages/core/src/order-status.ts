import type { OrderStatus } from "./types.ts";

/**
 * The one order-status transition table. A status not listed as a source is terminal.
 * PLACED: accepted and working (or being filled at once, for market orders).
 */
export const ORDER_STATUS_TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  PLACED: ["PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED"],
  PARTIALLY_FILLED: ["PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED"],
  FILLED: [],
  CANCELLED: [],
  EXPIRED: [],
  REJECTED: [],
};

export function isWorkingStatus(status: OrderStatus): boolean {
  return status === "PLACED" || status === "PARTIALLY_FILLED";
}

/** An order went through a transition the table forbids: a bug in the engine or a corrupt journal. */
export class IllegalOrderTransitionError extends Error {
  override readonly name = "IllegalOrderTransitionError";
  constructor(
    readonly orderId: number,
    readonly from: OrderStatus,
    readonly to: OrderStatus,
  ) {
    super(`order ${orderId}: illegal status transition ${from} -> ${to}`);
  }
}

export function assertOrderTransition(orderId: number, from: OrderStatus, to: OrderStatus): void {
  if (!ORDER_STATUS_TRANSITIONS[from].includes(to)) throw new IllegalOrderTransitionError(orderId, from, to);
}
