/** Starts the real wshub binary (WSHUB_BIN, default target/debug/wshub) on an ephemeral port. */

import { spawn, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { request } from "node:http";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const FIXTURES = join(ROOT, "tests", "fixtures", "protocol");
const BIN = process.env["WSHUB_BIN"] ?? join(ROOT, "target", "debug", "wshub");
export const SECRET = "ts-client-test-secret";

export function token(sub: string, role: string, expIn = 3600): string {
  const b64 = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, role, exp: Math.floor(Date.now() / 1000 + expIn) })}`;
  return `${body}.${b64(createHmac("sha256", SECRET).update(body).digest())}`;
}

export class Hub {
  addr = "";
  port = 0;
  private proc: ChildProcess | null = null;
  private readonly dir: string;
  private readonly config: string;

  /** `extra.jwt` lines go under `auth.jwt:` (indented 4), `extra.auth` under `auth:` (indented 2). */
  private constructor(configYaml: string, extra: { auth?: string; jwt?: string }) {
    if (!existsSync(BIN)) throw new Error(`${BIN} not found: run \`cargo build -p wshub\` or scripts/test`);
    this.dir = mkdtempSync(join(tmpdir(), "wshub-ts-"));
    this.config = join(this.dir, "wshub.yaml");
    writeFileSync(this.config, `auth:\n  jwt:\n    hs256_secret: ${SECRET}\n${extra.jwt ?? ""}${extra.auth ?? ""}${configYaml}`);
  }

  static async start(configYaml = "", extra: { auth?: string; jwt?: string } = {}): Promise<Hub> {
    const hub = new Hub(configYaml, extra);
    await hub.spawn(0);
    return hub;
  }

  private spawn(port: number): Promise<void> {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WSHUB_")));
    const proc = spawn(BIN, ["serve", "--config", this.config, "--port", String(port)], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    let stderr = "";
    proc.stderr!.on("data", (chunk) => (stderr = (stderr + String(chunk)).slice(-4000)));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`wshub did not start:\n${stderr}`)), 15000);
      const lines = createInterface({ input: proc.stdout! });
      lines.on("line", (line) => {
        const match = /http:\/\/(\S+)/.exec(line);
        if (line.includes("listening on") && match) {
          clearTimeout(timer);
          this.addr = match[1]!;
          this.port = Number(this.addr.split(":").pop());
          resolvePromise();
        }
      });
      proc.on("exit", () => {
        clearTimeout(timer);
        reject(new Error(`wshub exited:\n${stderr}`));
      });
    });
  }

  get wsUrl(): string {
    return `ws://${this.addr}/ws`;
  }

  /** An HTTP call with node:http (DOM test environments replace the global fetch). */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolveCall, reject) => {
      const req = request(
        `http://${this.addr}${path}`,
        { method, headers: data ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } : {} },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk) => (text += chunk));
          res.on("end", () => resolveCall({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  }

  async publish(topic: string, event: string, payload: unknown): Promise<{ offset: number; epoch: string }> {
    const { status, body } = await this.api("POST", "/api/publish", { topic, event, payload });
    if (status !== 200) throw new Error(`publish failed: ${status} ${JSON.stringify(body)}`);
    return body;
  }

  async subscribers(topic: string): Promise<number> {
    return (await this.api("GET", `/api/channels/${topic}`)).body.subscribers;
  }

  /** Graceful stop (SIGTERM): the hub flushes, closes every connection with 1001, exits 0. */
  async terminate(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    proc.removeAllListeners("exit");
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 20000);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.terminate();
    await this.spawn(this.port);
  }

  async stop(): Promise<void> {
    await this.terminate();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits until `predicate` holds, re-checking whenever `changed` is signalled (or every 20 ms for server-side state). */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, timeout = 15000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Event-driven waits: handlers call `poke()`, tests `await changes.until(condition)`. */
export class Changes {
  private waiters: Array<() => void> = [];

  readonly poke = (): void => {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  };

  async until(predicate: () => boolean, what: string, timeout = 15000): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!predicate()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolveWait, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolveWait();
        });
      });
    }
  }
}
