// SPDX-License-Identifier: Apache-2.0
// Types of doorman.js, the Doorman session client (browsers and Node).

export declare const PROTOCOL: "doorman.v1";
export declare const KEY_PROTOCOL_PREFIX: "doorman.key.";

export declare const CloseCodes: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  KEY_REVOKED: 4001;
  KEY_EXPIRED: 4003;
  KEY_ROTATED: 4004;
  KEY_DELETED: 4006;
  KEY_UNKNOWN: 4008;
  SLOW_CONSUMER: 4100;
  KEY_SUSPENDED: 4102;
  USER_DISABLED: 4105;
  KILLED: 4107;
  RATE_LIMITED: 4129;
}>;

/** Server error codes (README "Calls to upstream services") and the client's own. */
export type DoormanErrorCode =
  | "forbidden" | "rate_limited" | "too_many_calls" | "upstream_status" | "upstream_unavailable" | "upstream_timeout"
  | "upstream_error" | "unknown_service" | "invalid_request" | "overloaded" | "response_too_large"
  // client side
  | "timeout" | "disconnected" | "stopped" | "unsubscribed" | "no_websocket"
  | (string & {});

/** A request that failed: the server's typed `error`, or a client-side one (`timeout`, `disconnected`, `stopped`). */
export declare class DoormanError extends Error {
  constructor(code: string, message?: string, details?: Record<string, any>);
  readonly name: "DoormanError";
  /** e.g. forbidden, rate_limited, upstream_unavailable, timeout (no answer within the request's timeout). */
  code: DoormanErrorCode;
  /** The server's finer reason, e.g. not_permitted_for_user, denied_by_rule. */
  reason?: string;
  /** How long to wait before trying again (rate_limited, too_many_calls, upstream_unavailable). */
  retryAfterMs?: number;
  /** The upstream's HTTP status (upstream_status). */
  status?: number;
  /** The upstream's body (upstream_status). */
  body?: any;
  /** The rule that denied (forbidden / denied_by_rule). */
  rule?: string;
  /** The server's error message as received. */
  details: Record<string, any>;
}

export type CloseAction = "stop" | "backoff" | "now" | "restart";
/** 4000–4099 stop; 4100–4199 back off; 4200–4299 now; 1001 restart (short delay); anything else back off. */
export declare function closeAction(code: number): CloseAction;
/** Full jitter: uniform in [0, min(maxMs, baseMs·2^attempt)). */
export declare function backoffDelay(attempt: number, baseMs: number, maxMs: number, random?: () => number): number;

export interface Welcome {
  session: string;
  user: { id: string; name: string };
  key: { id: string; name: string };
  scopes: string[];
  properties: string[];
  rules: string[];
  /** RFC 3339, or null when the key does not expire. */
  expiresAt: string | null;
}

export interface StopInfo {
  /** The close code: 4001 revoked, 4003 expired, 4004 rotated, 4006 deleted, 4008 unknown key; 1000 for close(). */
  code: number;
  /** key_revoked, key_suspended, key_expired, key_rotated, user_disabled, key_deleted, killed_by_administrator, client_closed, no_websocket. */
  reason: string;
  /** For people: "This device's key was revoked." */
  message: string;
  fromServer: boolean;
}

export interface DisconnectInfo {
  code: number;
  /** The close reason, or handshake_failed, connect_timeout, ping_timeout, subscribe_timeout. */
  reason: string;
  action: CloseAction;
  /** Milliseconds until the next attempt. */
  delayMs: number;
}

export interface Notice { type: "notice"; reason: string; code: number; reconnect: boolean; message: string }
export interface ExpiryWarning { type: "expiry_warning"; expiresAt: string }
export interface PermissionsChanged {
  type: "permissions_changed";
  scopes: string[];
  properties: string[];
  rules: string[];
  expiresAt: string | null;
  removedSubscriptions: { channel: string; property?: string }[];
}
export interface SubscriptionError { channel: string; property: string | null; error: DoormanError }
export interface EventMeta { channel: string; property: string | null }
export interface CallResult { status: number; body: any; bodyEncoding?: "base64" }

export interface DoormanEvents {
  welcome: Welcome;
  stopped: StopInfo;
  disconnected: DisconnectInfo;
  reconnecting: { attempt: number; delayMs: number };
  expiryWarning: ExpiryWarning;
  permissionsChanged: PermissionsChanged;
  notice: Notice;
  subscriptionError: SubscriptionError;
  error: unknown;
}

/** Anything shaped like the WHATWG WebSocket constructor (browsers, Node 22+, Node 20 with --experimental-websocket, the `ws` package). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => {
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: { data: any }) => any) | null;
  onerror: ((ev: any) => any) | null;
  onclose: ((ev: { code: number; reason: string }) => any) | null;
};

export interface ClientOptions {
  /** Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** First retry waits up to this (default 1000). */
  backoffBaseMs?: number;
  /** No retry waits longer (default 30000). */
  backoffMaxMs?: number;
  /** After close 1001 the first retry waits up to this (default 1000). */
  restartDelayMs?: number;
  /** A session that lasted this long resets the backoff (default 10000). */
  stableAfterMs?: number;
  /** Handshake and welcome within this, else retry (default 10000). */
  connectTimeoutMs?: number;
  /** Default timeout of subscribe, unsubscribe, publish, ping (default 10000). */
  requestTimeoutMs?: number;
  /** Default timeout of call (default 30000). */
  callTimeoutMs?: number;
  /** Ping this often to find dead connections; 0 = never (default 25000). */
  pingIntervalMs?: number;
  /** Browsers: retry at once when the page comes back online (default true). */
  reconnectWhenOnline?: boolean;
  onWelcome?: (w: Welcome) => void;
  onStopped?: (s: StopInfo) => void;
  onDisconnected?: (d: DisconnectInfo) => void;
  onReconnecting?: (r: { attempt: number; delayMs: number }) => void;
  onExpiryWarning?: (m: ExpiryWarning) => void;
  onPermissionsChanged?: (m: PermissionsChanged) => void;
  onNotice?: (m: Notice) => void;
  onSubscriptionError?: (e: SubscriptionError) => void;
  onError?: (e: unknown) => void;
}

export interface RequestOptions { property?: string; timeoutMs?: number }

export type ClientState = "idle" | "connecting" | "open" | "waiting" | "stopped";

export declare class DoormanClient {
  constructor(url: string, key: string, options?: ClientOptions);
  readonly url: string;
  readonly state: ClientState;
  /** The latest welcome (updated by permissions_changed), null before the first. */
  readonly welcome: Welcome | null;
  /** Why the client stopped, once it has. */
  readonly stopInfo: StopInfo | null;
  /** Connection attempts made so far. */
  readonly attempts: number;
  readonly subscriptions: { channel: string; property: string | null; active: boolean }[];

  on<E extends keyof DoormanEvents>(event: E, fn: (payload: DoormanEvents[E]) => void): () => void;
  off<E extends keyof DoormanEvents>(event: E, fn: (payload: DoormanEvents[E]) => void): void;
  /** Start (if not started) and wait for the first welcome; rejects with `stopped` if the client stops first. */
  connect(opts?: { timeoutMs?: number }): Promise<Welcome>;
  /** Stop for good. */
  close(): void;
  /** Kept and renewed after every reconnect until unsubscribed or refused by the server. */
  subscribe(channel: string, handler: (data: any, meta: EventMeta) => void, opts?: RequestOptions): Promise<void>;
  /** Without a handler: all handlers; the last one removed unsubscribes at the server. */
  unsubscribe(channel: string, handler?: ((data: any, meta: EventMeta) => void) | null, opts?: RequestOptions): Promise<void>;
  publish(channel: string, data: any, opts?: RequestOptions): Promise<void>;
  /** `call("pms:checkIn", {room: 101}, {property: "hotel-1"})`: the upstream's 2xx answer, or a DoormanError. */
  call(name: string, body?: any, opts?: RequestOptions): Promise<CallResult>;
  /** Round-trip milliseconds. */
  ping(opts?: { timeoutMs?: number }): Promise<number>;
}

/** A client that has received its first welcome. */
export declare function connect(url: string, key: string, options?: ClientOptions & { timeoutMs?: number }): Promise<DoormanClient>;

export default DoormanClient;
