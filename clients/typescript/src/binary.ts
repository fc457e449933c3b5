/**
 * The §12 binary frame codec:
 * `[version u8=1][kind u8][metadata length u32 BE][metadata JSON][body]`. No I/O.
 */

import { BinaryFrameError } from "./errors.js";

export const VERSION = 1;
const HEADER = 6;
export const KIND_NAMES: Record<number, string> = { 0: "raw", 1: "image", 2: "audio", 3: "file" };
const KINDS: Record<string, number> = { raw: 0, image: 1, audio: 2, file: 3 };

/** One decoded binary frame. */
export interface BinaryFrame {
  version: number;
  kind: number;
  kindName: string;
  metadata: Record<string, unknown>;
  body: Uint8Array;
}

/** Decodes one binary frame; throws {@link BinaryFrameError} when it is malformed. */
export function decodeFrame(data: ArrayBuffer | ArrayBufferView): BinaryFrame {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length < HEADER) {
    throw new BinaryFrameError(`frame of ${bytes.length} bytes is shorter than its ${HEADER}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  const kind = view.getUint8(1);
  const length = view.getUint32(2, false);
  if (version !== VERSION) throw new BinaryFrameError(`unsupported version ${version}`);
  if (!(kind in KIND_NAMES)) throw new BinaryFrameError(`unknown kind ${kind}`);
  const end = HEADER + length;
  if (end > bytes.length) throw new BinaryFrameError(`metadata length ${length} runs past the end of the frame`);
  let metadata: unknown;
  try {
    metadata = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(HEADER, end)));
  } catch (error) {
    throw new BinaryFrameError(`metadata is not valid JSON: ${(error as Error).message}`);
  }
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new BinaryFrameError("metadata is not a JSON object");
  }
  return { version, kind, kindName: KIND_NAMES[kind]!, metadata: metadata as Record<string, unknown>, body: bytes.slice(end) };
}

/** Encodes a binary frame (metadata as compact UTF-8 JSON, keys in the given order). */
export function encodeFrame(kind: number | string, metadata: Record<string, unknown>, body: Uint8Array = new Uint8Array()): Uint8Array {
  const code = typeof kind === "string" ? KINDS[kind] : kind;
  if (code === undefined || !(code in KIND_NAMES)) throw new BinaryFrameError(`unknown kind ${String(kind)}`);
  const meta = new TextEncoder().encode(JSON.stringify(metadata));
  const out = new Uint8Array(HEADER + meta.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, VERSION);
  view.setUint8(1, code);
  view.setUint32(2, meta.length, false);
  out.set(meta, HEADER);
  out.set(body, HEADER + meta.length);
  return out;
}
