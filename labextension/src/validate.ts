/**
 * The one door for the monitor's input: every message from the server's
 * WebSocket (/lepton/api/metrics) or from the notebook widget's model is
 * untrusted, so `parseMessage` turns it into a fully typed, sanitised
 * `Message` or null. It never throws; each kind of problem is reported with
 * `console.warn` at most once a minute.
 */

/** The states a rank can be in (lepton_nb.errors.RankState). */
export const RANK_STATES = ['idle', 'busy', 'dead', 'restarting'] as const;
/** A rank's state. */
export type RankState = (typeof RANK_STATES)[number];

/** The classes of a link, as the monitor colours them. */
export const LINK_CLASSES = ['nvlink', 'pcie', 'shm', 'sys', 'network'] as const;
/** A link's class. */
export type LinkClass = (typeof LINK_CLASSES)[number];

/** The kinds of the cluster's events. */
export const EVENT_KINDS = [
  'rank_died',
  'rank_restarted',
  'push_started',
  'push_ended',
  'cell_started',
  'cell_ended'
] as const;
/** An event's kind. */
export type EventKind = (typeof EVENT_KINDS)[number];

/** The memory a rank's bar shows: GPU memory, torch's allocator, or the process RSS. */
export interface IMemory {
  kind: 'gpu' | 'torch' | 'host';
  /** Bytes in use. */
  used: number;
  /** Bytes in all, null where unknown. */
  total: number | null;
}

/** A rank's point of each charted series in one snapshot (null: not known). */
export interface IPoint {
  /** Bytes: GPU memory on GPU ranks, else the RSS. */
  memory: number | null;
  /** Percent, of the GPU or of the CPU (see `IRank.utilizationKind`). */
  utilization: number | null;
  /** Bytes/s the rank sends on all its links. */
  sent: number | null;
}

/** One rank's row of a snapshot. */
export interface IRank {
  rank: number;
  engineId: number | null;
  host: string | null;
  pid: number | null;
  /** "cpu" or "cuda:0". */
  device: string;
  /** The physical GPU index, null on CPU ranks. */
  gpu: number | null;
  state: RankState;
  /** Seconds since the rank's latest sample arrived; null: none yet. */
  age: number | null;
  memory: IMemory | null;
  series: IPoint;
  utilizationKind: 'gpu' | 'cpu';
}

/** Bytes sent from `src` to `dst` (-1: the notebook). */
export interface ILink {
  src: number;
  dst: number;
  /** Bytes in all. */
  bytes: number;
  /** Bytes/s now. */
  rate: number;
  linkClass: LinkClass;
}

/** Something that happened in the cluster. */
export interface IEvent {
  id: number;
  /** Epoch seconds. */
  time: number;
  kind: EventKind;
  rank: number | null;
  text: string;
}

/** A cluster's state at `time`. */
export interface ISnapshot {
  type: 'snapshot';
  cluster: string;
  /** Epoch seconds, when the server built it. */
  time: number;
  seq: number;
  /** Seconds between samples. */
  interval: number;
  worldSize: number;
  backend: string;
  running: boolean;
  notebookHost: string | null;
  /** Sorted by rank, each rank once. */
  ranks: IRank[];
  links: ILink[];
  events: IEvent[];
}

/** The server's greeting (its content is not used). */
export interface IHello {
  type: 'hello';
}

/** A cluster stopped. */
export interface IGone {
  type: 'gone';
  cluster: string;
}

/** What the monitor understands. */
export type Message = ISnapshot | IHello | IGone;

/** Caps on what one message may hold; the rest is dropped. */
export const LIMITS = {
  clusterId: 200,
  ranks: 4096,
  links: 65536,
  events: 1000,
  text: 500,
  host: 255,
  short: 64,
  /** Characters of a JSON string message. */
  json: 64 * 1024 * 1024,
  rank: 1_000_000,
  bytes: 1e18,
  rate: 1e15,
  percent: 1e6
} as const;

/** Seconds between samples when a snapshot does not say (or says nonsense). */
const DEFAULT_INTERVAL = 1;

type Obj = Record<string, unknown>;

const WARN_EVERY_MS = 60_000;
const WARN_KINDS = 200;
const warned = new Map<string, number>();

/** Report one kind of problem (`lepton: ignored <problem>`), at most once a minute per kind. */
export function warn(problem: string): void {
  try {
    const now = Date.now();
    const key = warned.size >= WARN_KINDS && !warned.has(problem) ? 'other problems' : problem;
    const last = warned.get(key);
    if (last !== undefined && now - last < WARN_EVERY_MS) {
      return;
    }
    warned.set(key, now);
    console.warn(`lepton: ignored ${key} (reported once a minute)`);
  } catch {
    // nothing to do: warning is best effort
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown, lo: number, hi: number): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi ? v : null;
}

function int(v: unknown, lo: number, hi: number): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi ? v : null;
}

function str(v: unknown, max: number): string | null {
  return typeof v === 'string' ? (v.length > max ? v.slice(0, max) : v) : null;
}

function oneOf<T extends string>(v: unknown, values: readonly T[]): T | null {
  return typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : null;
}

/**
 * An optional field: its value as `check` reads it; null when absent or null;
 * null (and a warning naming `what`) when present but wrong.
 */
function optional<T>(o: Obj, key: string, what: string, check: (v: unknown) => T | null): T | null {
  const v = o[key];
  if (v === undefined || v === null) {
    return null;
  }
  const out = check(v);
  if (out === null) {
    warn(`a bad ${what}.${key}`);
  }
  return out;
}

/** A list of at most `cap` items, or [] (warning) when `v` is no array. */
function list(v: unknown, cap: number, what: string): unknown[] {
  if (v === undefined || v === null) {
    return [];
  }
  if (!Array.isArray(v)) {
    warn(`a "${what}" that is no list`);
    return [];
  }
  if (v.length > cap) {
    warn(`the "${what}" beyond the first ${cap}`);
    return v.slice(0, cap);
  }
  return v;
}

function parseMemory(v: unknown): IMemory | null {
  if (!isObj(v)) {
    return null;
  }
  const kind = oneOf(v.kind, ['gpu', 'torch', 'host'] as const);
  const used = num(v.used, 0, LIMITS.bytes);
  if (kind === null || used === null) {
    return null;
  }
  const total = v.total === null || v.total === undefined ? null : num(v.total, 1, LIMITS.bytes);
  return { kind, used, total };
}

function parsePoint(v: unknown): IPoint {
  const point: IPoint = { memory: null, utilization: null, sent: null };
  if (v === undefined || v === null) {
    return point;
  }
  if (!isObj(v)) {
    warn('a rank series that is no object');
    return point;
  }
  point.memory = optional(v, 'memory', 'series', x => num(x, 0, LIMITS.bytes));
  point.utilization = optional(v, 'utilization', 'series', x => num(x, 0, LIMITS.percent));
  point.sent = optional(v, 'sent', 'series', x => num(x, 0, LIMITS.rate));
  return point;
}

function parseRank(v: unknown): IRank | null {
  if (!isObj(v)) {
    warn('a rank row that is no object');
    return null;
  }
  const rank = int(v.rank, 0, LIMITS.rank);
  const state = oneOf(v.state, RANK_STATES);
  if (rank === null || state === null) {
    warn(rank === null ? 'a rank row without a rank' : 'a rank row with an unknown state');
    return null;
  }
  let memory: IMemory | null = null;
  if (v.memory !== null && v.memory !== undefined) {
    memory = parseMemory(v.memory);
    if (memory === null) {
      warn('a bad rank memory');
    }
  }
  return {
    rank,
    engineId: optional(v, 'engine_id', 'rank', x => int(x, 0, Number.MAX_SAFE_INTEGER)),
    host: optional(v, 'host', 'rank', x => str(x, LIMITS.host)),
    pid: optional(v, 'pid', 'rank', x => int(x, 0, Number.MAX_SAFE_INTEGER)),
    device: optional(v, 'device', 'rank', x => str(x, LIMITS.short)) ?? 'n/a',
    gpu: optional(v, 'gpu', 'rank', x => int(x, 0, LIMITS.rank)),
    state,
    age: optional(v, 'age', 'rank', x => num(x, 0, Number.MAX_VALUE)),
    memory,
    series: parsePoint(v.series),
    utilizationKind: oneOf(v.utilization_kind, ['gpu', 'cpu'] as const) ?? 'cpu'
  };
}

function parseLink(v: unknown): ILink | null {
  if (!isObj(v)) {
    return null;
  }
  const src = int(v.src, -1, LIMITS.rank);
  const dst = int(v.dst, -1, LIMITS.rank);
  const bytes = num(v.bytes, 0, LIMITS.bytes);
  const rate = num(v.rate, 0, LIMITS.rate);
  const linkClass = oneOf(v.class, LINK_CLASSES);
  if (src === null || dst === null || src === dst || bytes === null || rate === null || !linkClass) {
    return null;
  }
  return { src, dst, bytes, rate, linkClass };
}

function parseEvent(v: unknown): IEvent | null {
  if (!isObj(v)) {
    return null;
  }
  const id = int(v.id, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const time = num(v.time, 0, Number.MAX_VALUE);
  const kind = oneOf(v.kind, EVENT_KINDS);
  const rank = v.rank === null || v.rank === undefined ? null : int(v.rank, 0, LIMITS.rank);
  if (id === null || time === null || kind === null || (rank === null && v.rank != null)) {
    return null;
  }
  return { id, time, kind, rank, text: str(v.text, LIMITS.text) ?? kind.replace('_', ' ') };
}

/** Each item of `items` that `parse` reads, warning once when some are dropped. */
function rows<T>(items: unknown[], parse: (v: unknown) => T | null, what: string): T[] {
  const out: T[] = [];
  let bad = 0;
  for (const item of items) {
    const row = parse(item);
    if (row === null) {
      bad++;
    } else {
      out.push(row);
    }
  }
  if (bad > 0) {
    warn(`malformed ${what}`);
  }
  return out;
}

function parseSnapshot(o: Obj): ISnapshot | null {
  const cluster = typeof o.cluster === 'string' && o.cluster.length <= LIMITS.clusterId ? o.cluster : null;
  // Not more than a day ahead of this clock: a snapshot "from the future"
  // would hide every later one (history keeps only times after the last).
  const time = num(o.time, 0, Date.now() / 1000 + 86400);
  if (cluster === null || cluster === '' || time === null || !Array.isArray(o.ranks)) {
    warn(
      cluster === null || cluster === ''
        ? 'a snapshot without a valid cluster id'
        : time === null
          ? 'a snapshot without a valid time'
          : 'a snapshot without a ranks list'
    );
    return null;
  }
  const ranks: IRank[] = [];
  const seen = new Set<number>();
  for (const r of rows(list(o.ranks, LIMITS.ranks, 'ranks'), parseRank, 'rank rows')) {
    if (seen.has(r.rank)) {
      warn('a duplicate rank row');
      continue;
    }
    seen.add(r.rank);
    ranks.push(r);
  }
  ranks.sort((a, b) => a.rank - b.rank);
  const notebook = o.notebook;
  let notebookHost: string | null = null;
  if (isObj(notebook)) {
    notebookHost = optional(notebook, 'host', 'notebook', x => str(x, LIMITS.host));
  } else if (notebook !== undefined && notebook !== null) {
    warn('a notebook that is no object');
  }
  return {
    type: 'snapshot',
    cluster,
    time,
    seq: optional(o, 'seq', 'snapshot', x => int(x, 0, Number.MAX_SAFE_INTEGER)) ?? 0,
    interval: optional(o, 'interval', 'snapshot', x => num(x, 0.01, 3600)) ?? DEFAULT_INTERVAL,
    worldSize: optional(o, 'world_size', 'snapshot', x => int(x, 0, LIMITS.rank)) ?? ranks.length,
    backend: optional(o, 'backend', 'snapshot', x => str(x, LIMITS.short)) ?? '',
    running: optional(o, 'running', 'snapshot', x => (typeof x === 'boolean' ? x : null)) ?? true,
    notebookHost,
    ranks,
    links: rows(list(o.links, LIMITS.links, 'links'), parseLink, 'links'),
    events: rows(list(o.events, LIMITS.events, 'events'), parseEvent, 'events')
  };
}

function parseObject(o: unknown): Message | null {
  if (!isObj(o)) {
    warn('a message that is no object');
    return null;
  }
  switch (o.type) {
    case 'snapshot':
      return parseSnapshot(o);
    case 'hello':
      return { type: 'hello' };
    case 'gone':
      if (typeof o.cluster === 'string' && o.cluster !== '' && o.cluster.length <= LIMITS.clusterId) {
        return { type: 'gone', cluster: o.cluster };
      }
      warn('a "gone" without a valid cluster id');
      return null;
    default:
      warn('a message of an unknown type');
      return null;
  }
}

/** Bare NaN and Infinity (as Python's json.dumps writes them), and the strings to skip. */
const NON_FINITE = /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g;

/**
 * `text` parsed as JSON, reading bare NaN and Infinity as null (a field
 * holding one is then dropped like any other bad field); undefined if it is
 * not JSON.
 */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // maybe NaN or Infinity: try again without them
  }
  if (text.length > LIMITS.json / 4) {
    warn('a message that is not JSON');
    return undefined;
  }
  try {
    const fixed = text.replace(NON_FINITE, token => (token.charCodeAt(0) === 34 ? token : 'null'));
    const parsed: unknown = JSON.parse(fixed);
    warn('NaN or Infinity in a message (read as null)');
    return parsed;
  } catch {
    warn('a message that is not JSON');
    return undefined;
  }
}

/**
 * The message `data` holds (a JSON string, or the object a widget's model
 * hands over), typed and sanitised; null when it is not one the monitor
 * understands. Never throws.
 *
 * A snapshot needs a cluster id (a string of at most 200 characters), a finite
 * time and a list of ranks; the rest is optional: bad fields are defaulted,
 * bad rank rows, links and events dropped one by one, lists and strings capped.
 */
export function parseMessage(data: unknown): Message | null {
  try {
    if (typeof data === 'string') {
      if (data.length > LIMITS.json) {
        warn('a message too long to read');
        return null;
      }
      const parsed = parseJson(data);
      return parsed === undefined ? null : parseObject(parsed);
    }
    return parseObject(data);
  } catch {
    // an exotic object (a getter that throws, a revoked proxy...)
    warn('a message that could not be read');
    return null;
  }
}
