/** Reconnect delays: exponential backoff with full jitter. */

/** How the client reconnects after a drop. */
export interface ReconnectOptions {
  /** `false`: never reconnect. Default `true`. */
  enabled?: boolean;
  /** First delay ceiling in ms (default 1000). */
  initialDelay?: number;
  /** Largest delay ceiling in ms (default 30000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number | null;
}

export class ReconnectPolicy {
  readonly enabled: boolean;
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly factor: number;
  readonly maxAttempts: number | null;

  constructor(options: ReconnectOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.initialDelay = options.initialDelay ?? 1000;
    this.maxDelay = options.maxDelay ?? 30000;
    this.factor = options.factor ?? 2;
    this.maxAttempts = options.maxAttempts ?? null;
  }

  /** The largest delay (ms) of attempt `attempt` (0-based). */
  ceiling(attempt: number): number {
    return Math.min(this.maxDelay, this.initialDelay * this.factor ** Math.min(attempt, 64));
  }

  /** A delay in `[0, ceiling(attempt)]` ("full jitter"): clients dropped together do not return together. */
  delay(attempt: number, random: () => number = Math.random): number {
    return random() * this.ceiling(attempt);
  }
}
