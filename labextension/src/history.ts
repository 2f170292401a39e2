/**
 * What the browser remembers of the stream: per cluster and rank, ring
 * buffers of the charted series over the last five minutes, the cluster's
 * recent events (deduplicated by id), and its latest snapshot. History starts
 * with the first message received (there is no backfill).
 */

import { IEvent, ISnapshot, LIMITS, Message, parseMessage, warn } from './validate';

/** Seconds of history kept and shown. */
export const WINDOW_S = 300;
/** The most points one series keeps. */
export const MAX_POINTS = 4096;
/** Clusters kept at most; snapshots of further ones are ignored. */
export const MAX_CLUSTERS = 64;
/** Ranks whose series a cluster keeps, at most (as many as a snapshot may list). */
export const MAX_RANKS = LIMITS.ranks;
/** Events kept at most per cluster. */
export const MAX_EVENTS = 1000;

/** The series charted for each rank. */
export const SERIES = ['memory', 'utilization', 'sent'] as const;
/** One of the charted series. */
export type SeriesName = (typeof SERIES)[number];

/** Points of one series to cover `WINDOW_S` at `interval` s apart (and a few more). */
export function capacityFor(interval: number): number {
  return Math.min(MAX_POINTS, Math.ceil(WINDOW_S / Math.max(interval, 0.01)) + 8);
}

/**
 * A ring buffer of numbers (NaN for "not known"), growing by doubling up to
 * its capacity, then overwriting its oldest value.
 */
export class Ring {
  constructor(capacity: number) {
    this._capacity = Math.max(1, Math.min(MAX_POINTS, Math.floor(capacity)));
    this._data = new Float64Array(Math.min(64, this._capacity));
  }

  /** How many values it holds. */
  get length(): number {
    return this._length;
  }

  /** The most values it holds before overwriting the oldest. */
  get capacity(): number {
    return this._capacity;
  }

  /** Let it hold up to `capacity` values (it never shrinks). */
  grow(capacity: number): void {
    this._capacity = Math.max(this._capacity, Math.min(MAX_POINTS, Math.floor(capacity)));
  }

  /** Append `v`, dropping the oldest value when full. */
  push(v: number): void {
    if (this._length === this._data.length && this._length < this._capacity) {
      const bigger = new Float64Array(Math.min(this._capacity, this._data.length * 2));
      for (let i = 0; i < this._length; i++) {
        bigger[i] = this.get(i);
      }
      this._data = bigger;
      this._head = 0;
    }
    const size = this._data.length;
    if (this._length < size) {
      this._data[(this._head + this._length) % size] = v;
      this._length++;
    } else {
      this._data[this._head] = v;
      this._head = (this._head + 1) % size;
    }
  }

  /** Drop the `n` oldest values. */
  drop(n: number): void {
    const k = Math.min(Math.max(0, n), this._length);
    this._head = (this._head + k) % this._data.length;
    this._length -= k;
  }

  /** The `i`th oldest value (0: the oldest). */
  get(i: number): number {
    return this._data[(this._head + i) % this._data.length];
  }

  /** The oldest finite value, NaN when none. */
  firstFinite(): number {
    for (let i = 0; i < this._length; i++) {
      const v = this.get(i);
      if (Number.isFinite(v)) {
        return v;
      }
    }
    return NaN;
  }

  /** The newest finite value, NaN when none. */
  lastFinite(): number {
    for (let i = this._length - 1; i >= 0; i--) {
      const v = this.get(i);
      if (Number.isFinite(v)) {
        return v;
      }
    }
    return NaN;
  }

  private _data: Float64Array;
  private _head = 0;
  private _length = 0;
  private _capacity: number;
}

/** The charted series of one rank, as uPlot takes them: x (epoch s) then each series (null: a gap). */
export interface IRankData {
  x: number[];
  memory: (number | null)[];
  utilization: (number | null)[];
  sent: (number | null)[];
}

/**
 * The points of `values` (at times `time`) from `start` to `end`, thinned to
 * at most two per bucket of `buckets`: each bucket's lowest and highest value,
 * in time order (a bucket with only gaps gives one gap). What a chart
 * `buckets` pixels wide draws looks the same, for a fraction of the work.
 */
export function decimate(
  time: Ring,
  values: Ring,
  start: number,
  end: number,
  buckets: number
): [number[], (number | null)[]] {
  const xs: number[] = [];
  const ys: (number | null)[] = [];
  const n = Math.min(time.length, values.length);
  const span = end - start;
  if (!(span > 0) || buckets < 1) {
    return [xs, ys];
  }
  let bucket = -1;
  let lo = NaN;
  let hi = NaN;
  let tLo = 0;
  let tHi = 0;
  let gapAt = NaN;
  const flush = () => {
    if (lo === lo) {
      if (tLo === tHi) {
        xs.push(tLo);
        ys.push(lo);
      } else if (tLo < tHi) {
        xs.push(tLo, tHi);
        ys.push(lo, hi);
      } else {
        xs.push(tHi, tLo);
        ys.push(hi, lo);
      }
    } else if (gapAt === gapAt) {
      xs.push(gapAt);
      ys.push(null);
    }
    lo = hi = gapAt = NaN;
  };
  for (let i = 0; i < n; i++) {
    const t = time.get(i);
    if (t < start || t > end) {
      continue;
    }
    const b = Math.min(buckets - 1, Math.floor(((t - start) / span) * buckets));
    if (b !== bucket) {
      flush();
      bucket = b;
    }
    const v = values.get(i);
    if (v !== v) {
      if (gapAt !== gapAt) {
        gapAt = t;
      }
      continue;
    }
    if (!(v >= lo)) {
      if (lo !== lo) {
        hi = v;
        tHi = t;
      }
      lo = v;
      tLo = t;
    }
    if (v > hi) {
      hi = v;
      tHi = t;
    }
  }
  flush();
  return [xs, ys];
}

/** One rank's series over the last `WINDOW_S` seconds, one point per snapshot. */
export class RankHistory {
  constructor(interval: number) {
    const cap = capacityFor(interval);
    this.time = new Ring(cap);
    this.memory = new Ring(cap);
    this.utilization = new Ring(cap);
    this.sent = new Ring(cap);
  }

  /** Epoch seconds of each point. */
  readonly time: Ring;
  /** Bytes. */
  readonly memory: Ring;
  /** Percent. */
  readonly utilization: Ring;
  /** Bytes/s. */
  readonly sent: Ring;

  /** Bumped on every change (the arrays of `data()` are remade after one). */
  get version(): number {
    return this._version;
  }

  /** The ring of one series. */
  ring(name: SeriesName): Ring {
    return this[name];
  }

  /** Append one point (callers keep `t` increasing), forgetting those older than the window. */
  push(t: number, memory: number | null, utilization: number | null, sent: number | null, interval: number): void {
    const cap = capacityFor(interval);
    for (const ring of [this.time, this.memory, this.utilization, this.sent]) {
      ring.grow(cap);
    }
    this.time.push(t);
    this.memory.push(memory ?? NaN);
    this.utilization.push(utilization ?? NaN);
    this.sent.push(sent ?? NaN);
    let old = 0;
    while (old < this.time.length && this.time.get(old) < t - WINDOW_S) {
      old++;
    }
    if (old > 0) {
      for (const ring of [this.time, this.memory, this.utilization, this.sent]) {
        ring.drop(old);
      }
    }
    this._version++;
    this._data = null;
  }

  /** The series as arrays for uPlot (made once per version). */
  data(): IRankData {
    if (this._data === null) {
      const n = this.time.length;
      const out: IRankData = { x: new Array(n), memory: new Array(n), utilization: new Array(n), sent: new Array(n) };
      for (let i = 0; i < n; i++) {
        out.x[i] = this.time.get(i);
        const m = this.memory.get(i);
        const u = this.utilization.get(i);
        const s = this.sent.get(i);
        out.memory[i] = m === m ? m : null; // NaN is a gap
        out.utilization[i] = u === u ? u : null;
        out.sent[i] = s === s ? s : null;
      }
      this._data = out;
    }
    return this._data;
  }

  private _version = 0;
  private _data: IRankData | null = null;
}

/** A cluster's recent events: each id once, the last `WINDOW_S` seconds, newest first. */
export class EventStore {
  /** Bumped whenever the events change. */
  get version(): number {
    return this._version;
  }

  /** Newest first (by time, then id). */
  get events(): readonly IEvent[] {
    return this._list;
  }

  /** Add the events not seen yet, and forget those older than `now - WINDOW_S`. */
  add(events: readonly IEvent[], now: number): void {
    let changed = false;
    for (const e of events) {
      if (!this._byId.has(e.id) && e.time >= now - WINDOW_S) {
        this._byId.set(e.id, e);
        changed = true;
      }
    }
    const before = this._byId.size;
    for (const [id, e] of this._byId) {
      if (e.time < now - WINDOW_S) {
        this._byId.delete(id);
      }
    }
    changed = changed || this._byId.size !== before;
    if (!changed) {
      return;
    }
    this._list = [...this._byId.values()].sort((a, b) => b.time - a.time || b.id - a.id);
    if (this._list.length > MAX_EVENTS) {
      for (const e of this._list.splice(MAX_EVENTS)) {
        this._byId.delete(e.id);
      }
    }
    this._version++;
  }

  private _byId = new Map<number, IEvent>();
  private _list: IEvent[] = [];
  private _version = 0;
}

/** All the monitor knows of one cluster. */
export class ClusterState {
  constructor(readonly id: string) {}

  /** The latest snapshot kept (null before the first). */
  snapshot: ISnapshot | null = null;
  /** `performance.now()` when it arrived. */
  receivedAt = 0;
  /** True once the cluster said it stopped ("gone", or a snapshot with running false). */
  stopped = false;
  /** Bumped on every change. */
  version = 0;
  /** Each rank's series; a rank keeps its series across restarts and absences. */
  readonly ranks = new Map<number, RankHistory>();
  readonly events = new EventStore();

  /** Take `snap` if it is newer than the last one kept; false if it was skipped. */
  apply(snap: ISnapshot, receivedAt: number): boolean {
    if (this.snapshot !== null && snap.time <= this.snapshot.time) {
      return false; // a duplicate, a replay, or out of order
    }
    for (const r of snap.ranks) {
      let h = this.ranks.get(r.rank);
      if (h === undefined) {
        h = new RankHistory(snap.interval);
        this.ranks.set(r.rank, h);
      }
      h.push(snap.time, r.series.memory, r.series.utilization, r.series.sent, snap.interval);
    }
    if (this.ranks.size > MAX_RANKS) {
      // more ranks than a cluster has: forget those this snapshot does not list
      const listed = new Set(snap.ranks.map(r => r.rank));
      for (const rank of this.ranks.keys()) {
        if (!listed.has(rank)) {
          this.ranks.delete(rank);
        }
      }
    }
    this.events.add(snap.events, snap.time);
    this.snapshot = snap;
    this.receivedAt = receivedAt;
    this.stopped = !snap.running;
    this.version++;
    return true;
  }
}

/** How a store treats a cluster that is gone. */
export interface IStoreOptions {
  /** Forget a cluster on "gone" (the panel) rather than show it stopped (the widget). */
  dropGone: boolean;
}

/**
 * Every cluster the monitor heard of. One store may feed several views (a
 * widget shown twice); each view listens for changes.
 */
export class MonitorStore {
  constructor(options: IStoreOptions) {
    this._dropGone = options.dropGone;
  }

  /** The clusters, by id. */
  get clusters(): ReadonlyMap<string, ClusterState> {
    return this._clusters;
  }

  /** Milliseconds spent receiving, in all (views add what was spent since their last frame). */
  get receiveMs(): number {
    return this._receiveMs;
  }

  /** How many messages it was handed, in all (good or not). */
  get received(): number {
    return this._received;
  }

  /** Take one untrusted message; never throws. Listeners hear of it, changed or not. */
  receive(data: unknown): void {
    const t0 = performance.now();
    this._received++;
    let msg: Message | null = null;
    let changed = false;
    try {
      msg = parseMessage(data);
      if (msg !== null) {
        changed = this._apply(msg, t0);
      }
    } catch {
      warn('a message that could not be taken');
    }
    this._receiveMs += performance.now() - t0;
    this._notify(changed);
  }

  /** Call `fn` after each message (`changed`: whether it changed anything); returns a function that stops it. */
  listen(fn: (changed: boolean) => void): () => void {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  private _apply(msg: Message, now: number): boolean {
    if (msg.type === 'hello') {
      return false;
    }
    if (msg.type === 'gone') {
      const c = this._clusters.get(msg.cluster);
      if (c === undefined) {
        return false;
      }
      if (this._dropGone) {
        this._clusters.delete(msg.cluster);
      } else {
        c.stopped = true;
        c.version++;
      }
      return true;
    }
    let c = this._clusters.get(msg.cluster);
    if (c === undefined) {
      if (this._clusters.size >= MAX_CLUSTERS) {
        warn(`a snapshot of a cluster beyond the first ${MAX_CLUSTERS}`);
        return false;
      }
      c = new ClusterState(msg.cluster);
      this._clusters.set(msg.cluster, c);
    }
    return c.apply(msg, now);
  }

  private _notify(changed: boolean): void {
    for (const fn of this._listeners) {
      try {
        fn(changed);
      } catch {
        warn('a change a view failed to take');
      }
    }
  }

  private _dropGone: boolean;
  private _clusters = new Map<string, ClusterState>();
  private _listeners = new Set<(changed: boolean) => void>();
  private _receiveMs = 0;
  private _received = 0;
}
