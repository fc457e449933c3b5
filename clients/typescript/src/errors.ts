/**
 * Typed errors: one class per wire error code (CONTRACT §4), plus the client's own.
 *
 * Every `error` the hub sends becomes an instance of the class registered for its
 * `payload.code`; a code this version does not know becomes a plain {@link WshubError},
 * so newer servers never break older clients.
 */

export type RequestId = string | number;

/** An `error` reply or notice from the hub. */
export class WshubError extends Error {
  /** The wire code (`"forbidden"`, …). */
  readonly code: string;
  /** The `id` of the request it answers; `null` for notices. */
  readonly requestId: RequestId | null;
  /** The error's whole payload (`code`, `message`, `retry_after`, …). */
  readonly payload: Record<string, unknown>;

  constructor(message: string, code = "error", requestId: RequestId | null = null, payload: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.requestId = requestId;
    this.payload = payload;
  }
}

/** The request was malformed (bad JSON, bad field, bad topic or event name). */
export class InvalidMessage extends WshubError {}
/** No handler is configured on the hub for this request type. */
export class UnknownType extends WshubError {}
/** No topic rule matches the topic. */
export class UnknownChannel extends WshubError {}
/** The connection's role may not do this on this topic. */
export class Forbidden extends WshubError {}
/** The connection holds `max_subscriptions_per_connection` topics already. */
export class TooManySubscriptions extends WshubError {}
/** A bad or missing token (the hub closes the connection with 4001). */
export class Unauthorized extends WshubError {}
/** The connection's token expired; a fresh `auth` is expected. */
export class TokenExpired extends WshubError {}
/** The request type's rate-limit bucket is empty. */
export class RateLimited extends WshubError {
  /** Seconds until a retry can succeed. */
  get retryAfter(): number {
    const value = this.payload["retry_after"];
    return typeof value === "number" ? value : 1;
  }
}
/** A reply or event would exceed the hub's `max_message_size`. */
export class MessageTooLarge extends WshubError {}
/** The backend handler for this request type failed. */
export class HandlerFailed extends WshubError {}
/** The backend handler for this request type did not answer in time. */
export class HandlerTimeout extends WshubError {}
/** The hub cannot serve this now (shutting down, feature off, broker down). */
export class Unavailable extends WshubError {}
/** An unexpected failure inside the hub. */
export class Internal extends WshubError {}

export const ERROR_CLASSES: Record<string, new (message: string, code?: string, requestId?: RequestId | null, payload?: Record<string, unknown>) => WshubError> = {
  invalid_message: InvalidMessage,
  unknown_type: UnknownType,
  unknown_channel: UnknownChannel,
  forbidden: Forbidden,
  too_many_subscriptions: TooManySubscriptions,
  unauthorized: Unauthorized,
  token_expired: TokenExpired,
  rate_limited: RateLimited,
  message_too_large: MessageTooLarge,
  handler_failed: HandlerFailed,
  handler_timeout: HandlerTimeout,
  unavailable: Unavailable,
  internal: Internal,
};

/** Builds the typed error for an `error` message's payload. */
export function errorFromPayload(payload: unknown, requestId: RequestId | null = null): WshubError {
  const p = payload && typeof payload === "object" ? (payload as Record<string, unknown>) : {};
  const code = String(p["code"] ?? "error");
  const message = String(p["message"] ?? "");
  const Cls = Object.prototype.hasOwnProperty.call(ERROR_CLASSES, code) ? ERROR_CLASSES[code]! : WshubError;
  return new Cls(message, code, requestId, p);
}

/** Base of the client-side connection errors (not sent by the hub). */
export class WshubConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The WebSocket connection could not be opened (`status`: the HTTP status of a refused upgrade, when known). */
export class ConnectFailed extends WshubConnectionError {
  constructor(
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

/** The connection dropped before the reply arrived; the request may or may not have run. */
export class ConnectionLost extends WshubConnectionError {}

/** The client is closed: by `close()`, or for good after a close code that must not be retried. */
export class ClientClosed extends WshubConnectionError {
  constructor(
    message: string,
    readonly code: number | null = null,
    readonly reason = "",
  ) {
    super(message);
  }
}

/** No reply arrived within the request's timeout. */
export class RequestTimeout extends WshubConnectionError {}

/** A binary frame does not follow CONTRACT §12. */
export class BinaryFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BinaryFrameError";
  }
}
