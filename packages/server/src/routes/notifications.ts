/**
 * Platform notifications (seed 000 "Notifications", API.md): margin calls, stop-outs, fills, SL/TP and
 * price alerts, each with a kind (what it is about), a level (info, warning, error) and a status (unread, read).
 * Newest first, by pages; the same rows stream live as `notificationEvent` (notifications.ts), with the unread count
 * the count route answers.
 */
import { PLATFORM_LIMITS } from "@bourse/store";
import { Type } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import { NOTIFICATION_KINDS_DESCRIPTION, NotificationTable, notificationView } from "../notifications.ts";
import {
  Closed,
  DEFAULT_PAGE_ROWS,
  DataResponse,
  OkResponse,
  PageQuery,
  authenticatedErrors,
  columnsDescription,
  toTable,
} from "../schemas.ts";

export const notificationRoutes: RouteModule = (app, { platform }) => {
  app.get(
    "/api/v1/notifications",
    {
      schema: {
        tags: ["Notifications"],
        summary: "The user's notifications, newest first, by pages (table with nextCursor)",
        description: columnsDescription(
          NotificationTable,
          "Pass `nextCursor` as `cursor` for the next page; null on the last. orderId, positionId, dealId and alertId " +
            `name what the notification is about, null where it is about none. ${NOTIFICATION_KINDS_DESCRIPTION}`,
        ),
        querystring: PageQuery,
        response: { 200: NotificationTable, ...authenticatedErrors },
      },
    },
    async (request) => {
      const { limit = DEFAULT_PAGE_ROWS, cursor } = request.query;
      const page = await platform.store.listNotifications(request.principal!.userId, {
        limit,
        cursor: cursor === undefined ? null : Number(cursor),
      });
      return toTable(
        NotificationTable,
        page.rows.map(notificationView),
        page.nextCursor === null ? null : String(page.nextCursor),
      );
    },
  );

  // Found by the audit of a web terminal: a badge's number was a count of every page of notifications.
  app.get(
    "/api/v1/notifications/unread-count",
    {
      schema: {
        tags: ["Notifications"],
        summary: "How many of the user's notifications are unread: a badge's number",
        description:
          `Counts up to ${PLATFORM_LIMITS.historyRowsKeptPerUser}, the notifications a user keeps (more unread is a ` +
          "passing state until the hourly prune). Every `notificationEvent` carries the same count as `unread`, " +
          "so a terminal on the stream asks at start and after a reconnect.",
        response: {
          200: DataResponse(
            Type.Object({
              unread: Type.Integer({ minimum: 0, maximum: PLATFORM_LIMITS.historyRowsKeptPerUser }),
            }),
          ),
          ...authenticatedErrors,
        },
      },
    },
    async (request) => ({
      data: { unread: await platform.store.countUnreadNotifications(request.principal!.userId) },
    }),
  );

  // Found by the audit of a terminal's journey of 7 December (sixth session): a terminal cleared its badge with one
  // request per notification.
  app.post(
    "/api/v1/notifications/read",
    {
      schema: {
        tags: ["Notifications"],
        summary: "Mark every notification of the user read",
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      await platform.store.markAllNotificationsRead(request.principal!.userId);
      return { data: "OK" as const };
    },
  );

  app.post(
    "/api/v1/notifications/:id/read",
    {
      schema: {
        tags: ["Notifications"],
        summary: "Mark a notification read (again is fine)",
        params: Closed({ id: Type.String({ pattern: "^[0-9]{1,15}$", description: "The notification's id" }) }),
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      const userId = request.principal!.userId;
      const id = Number(request.params.id);
      if (id < 1) throw new ApiError("NOT_FOUND", "No such notification");
      if (!(await platform.store.markNotificationRead(userId, id))) {
        // Already read, or not the user's: the newest of the user's rows at or below `id` tells which.
        const page = await platform.store.listNotifications(userId, { cursor: id + 1, limit: 1 });
        if (page.rows[0]?.id !== id) throw new ApiError("NOT_FOUND", "No such notification");
      }
      return { data: "OK" as const };
    },
  );
};
