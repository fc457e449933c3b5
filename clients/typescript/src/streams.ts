/**
 * Per-topic stream positions: drop duplicates, find gaps, and say when state must be refetched.
 *
 * For every subscribed topic the client keeps the `epoch` and `offset` of the last event it
 * accepted. An event at or below that offset (same epoch) is a duplicate and is dropped, so
 * nothing is delivered twice across reconnects. An event above `offset + 1` reveals a gap —
 * events lost in transit when a connection dropped — which the client fills from the topic's
 * `history` while later events of that topic wait here, so delivery stays in order. When
 * history cannot fill it, a {@link ResyncRequired} is produced instead. No I/O.
 */

import type { BinaryEvent, Position, ResyncRequired, WshubEvent } from "./messages.js";

export type StreamEvent = WshubEvent | BinaryEvent;
export type Item = StreamEvent | ResyncRequired;

/** Events `(after, upto]` of `topic` in `epoch` must be read from history. */
export interface Gap {
  topic: string;
  epoch: string;
  after: number;
  upto: number;
}

interface Stream {
  epoch: string | null;
  offset: number | null;
  /** A gap is being filled: events of the topic wait in `held`. */
  filling: Gap | null;
  held: StreamEvent[];
}

function resync(
  topic: string,
  epoch: string,
  offset: number,
  previousEpoch: string | null,
  previousOffset: number | null,
  reason: ResyncRequired["reason"],
): ResyncRequired {
  return { kind: "resync_required", type: "resync_required", topic, epoch, offset, previousEpoch, previousOffset, reason };
}

/** The positions of all subscribed topics. */
export class Streams {
  private readonly streams = new Map<string, Stream>();

  private stream(topic: string): Stream {
    let s = this.streams.get(topic);
    if (!s) {
      s = { epoch: null, offset: null, filling: null, held: [] };
      this.streams.set(topic, s);
    }
    return s;
  }

  position(topic: string): { epoch: string; offset: number } | null {
    const s = this.streams.get(topic);
    return s && s.epoch !== null && s.offset !== null ? { epoch: s.epoch, offset: s.offset } : null;
  }

  forget(topic: string): void {
    this.streams.delete(topic);
  }

  /** After a connection drop: events held behind a gap come again (replay or recovery). */
  resetInFlight(): void {
    for (const s of this.streams.values()) {
      s.filling = null;
      s.held = [];
    }
  }

  /** An event arrived: what to deliver now, and a gap to fill, if one opened. */
  accept(event: StreamEvent): [Item[], Gap | null] {
    if (event.offset === null || event.epoch === null) return [[event], null];
    const s = this.stream(event.topic);
    if (s.filling) {
      s.held.push(event);
      return [[], null];
    }
    if (s.epoch === null || s.offset === null) {
      s.epoch = event.epoch;
      s.offset = event.offset;
      return [[event], null];
    }
    if (event.epoch !== s.epoch) {
      const out: Item[] = [];
      if (event.offset !== 1) out.push(resync(event.topic, event.epoch, event.offset - 1, s.epoch, s.offset, "epoch_changed"));
      s.epoch = event.epoch;
      s.offset = event.offset;
      out.push(event);
      return [out, null];
    }
    if (event.offset <= s.offset) return [[], null];
    if (event.offset === s.offset + 1) {
      s.offset = event.offset;
      return [[event], null];
    }
    const gap: Gap = { topic: event.topic, epoch: s.epoch, after: s.offset, upto: event.offset - 1 };
    s.filling = gap;
    s.held = [event];
    return [[], gap];
  }

  /** A `subscribed` entry (`recover`: the position sent with the request, if any). */
  subscribed(entry: Position, recover: { epoch: string; offset: number } | null): Item[] {
    const s = this.stream(entry.topic);
    if (!recover) {
      if (s.epoch === null) {
        s.epoch = entry.epoch;
        s.offset = entry.offset;
      }
      return [];
    }
    if (entry.recovered && entry.epoch === recover.epoch) return []; // the replay follows
    s.epoch = entry.epoch;
    s.offset = entry.offset;
    s.filling = null;
    s.held = [];
    return [resync(entry.topic, entry.epoch, entry.offset, recover.epoch, recover.offset, "not_recovered")];
  }

  /** A subscription restored by a resumption: signals, and the offset the replay must reach. */
  restored(entry: Position): [Item[], number | null] {
    const s = this.stream(entry.topic);
    if (s.epoch === null || s.offset === null) {
      s.epoch = entry.epoch;
      s.offset = entry.offset;
      return [[], null];
    }
    if (entry.recovered && entry.epoch === s.epoch) return [[], entry.offset];
    const previous = { epoch: s.epoch, offset: s.offset };
    s.epoch = entry.epoch;
    s.offset = entry.offset;
    s.filling = null;
    s.held = [];
    return [[resync(entry.topic, entry.epoch, entry.offset, previous.epoch, previous.offset, "not_recovered")], null];
  }

  /** The resumption replay is complete: a gap if the tail up to `target` never came. */
  replayComplete(topic: string, target: number, epoch: string): Gap | null {
    const s = this.streams.get(topic);
    if (!s || s.filling || s.epoch !== epoch || s.offset === null || s.offset >= target) return null;
    const gap: Gap = { topic, epoch, after: s.offset, upto: target };
    s.filling = gap;
    s.held = [];
    return gap;
  }

  /**
   * A history page for `gap` arrived (`epoch` `null`: it could not be read). Returns what to
   * deliver, and the gap still to fill (the next page), if any.
   */
  filled(gap: Gap, epoch: string | null, messages: StreamEvent[]): [Item[], Gap | null] {
    const s = this.streams.get(gap.topic);
    if (!s || s.filling !== gap) return [[], null];
    const out: Item[] = [];
    if (epoch === gap.epoch) {
      for (const m of messages) {
        if (m.epoch === gap.epoch && m.offset === (s.offset ?? 0) + 1 && m.offset <= gap.upto) {
          s.offset = m.offset;
          out.push(m);
        }
      }
    }
    if (s.offset !== null && s.offset < gap.upto) {
      if (epoch === gap.epoch && messages.length > 0 && out.length > 0) {
        const next: Gap = { topic: gap.topic, epoch: gap.epoch, after: s.offset, upto: gap.upto };
        s.filling = next;
        return [out, next];
      }
      out.push(resync(gap.topic, gap.epoch, gap.upto, s.epoch, s.offset, "gap"));
      s.offset = gap.upto;
    }
    s.filling = null;
    const held = s.held;
    s.held = [];
    for (let i = 0; i < held.length; i++) {
      const [items, again] = this.accept(held[i]!);
      out.push(...items);
      if (again) {
        s.held.push(...held.slice(i + 1));
        return [out, again];
      }
    }
    return [out, null];
  }
}
