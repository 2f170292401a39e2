/**
 * The monitor's one renderer, used by the JupyterLab sidebar panel and by the
 * notebook widget alike: per cluster a header, the ranks' table (placement,
 * state, memory, and per rank sparklines of the last five minutes), the detail
 * chart of a clicked rank, the topology picture and the recent events.
 *
 * It redraws at most once per animation frame, reusing its DOM nodes and uPlot
 * instances; a sparkline's plot is only redrawn while it is on screen.
 */

import { DetailChart, EventSource, IWindow, SPARK_WIDTH, Sparkline, clock, setData } from './charts';
import { ClusterState, MonitorStore, RankHistory, SERIES, WINDOW_S, decimate } from './history';
import { ITopologyRank, TopologyView } from './topology';
import { size } from './units';
import { IEvent, IMemory, IRank, ISnapshot, warn } from './validate';

/** How the view is used: in the sidebar panel, or as a notebook's widget. */
export type MonitorMode = 'panel' | 'widget';

/** Options of a `MonitorView`. */
export interface IMonitorViewOptions {
  /** "panel" (the default): a gone cluster is removed; "widget": it is shown stopped. */
  mode?: MonitorMode;
  /** The store to draw (shared by several views); by default the view's own. */
  store?: MonitorStore;
}

/** Data is stale once older than this many intervals. */
const STALE_INTERVALS = 3;
/** Events listed at most. */
const EVENTS_SHOWN = 20;
/** Seconds between redraws of one sparkline's plot, at most. */
const SPARK_REDRAW_S = 1;
/** Buckets a sparkline's points are thinned to (two points each: 2 px wide). */
const SPARK_BUCKETS = SPARK_WIDTH / 2;
/** Milliseconds between checks for data gone stale. */
const STALE_CHECK_MS = 250;
/** The shortest x range of the charts, seconds (while the history is shorter). */
const MIN_WINDOW_S = 30;
/** Update durations kept in `window.__leptonUpdates`. */
const UPDATES_KEPT = 500;
/** `lepton-update` measures kept before they are cleared. */
const MEASURES_KEPT = 200;

const EMPTY_TEXT: Record<MonitorMode, string> = {
  panel: 'No cluster running. Start one in a notebook with: %lepton_cluster start -n 2',
  widget: 'waiting for the first snapshot…'
};

const MEMORY_TITLES: Record<IMemory['kind'], string> = {
  gpu: 'GPU memory',
  torch: 'GPU memory (torch)',
  host: 'memory (RSS)'
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function setText(node: Node, text: string): void {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}

function toggle(node: Element, cls: string, on: boolean): void {
  if (node.classList.contains(cls) !== on) {
    node.classList.toggle(cls, on);
  }
}

function setHidden(node: HTMLElement, hidden: boolean): void {
  if (node.hidden !== hidden) {
    node.hidden = hidden;
  }
}

/** Whether a rank's latest sample is too old to show as live (or there is none). */
export /**
 * The x range of the charts: the last `WINDOW_S` seconds up to `end`, or since the oldest
 * point kept when there is less history than that (at least `MIN_WINDOW_S`), so a panel
 * opened a minute ago fills its charts with that minute.
 */
function chartWindow(c: ClusterState, end: number): IWindow {
  let oldest = end;
  for (const h of c.ranks.values()) {
    if (h.time.length > 0) {
      oldest = Math.min(oldest, h.time.get(0));
    }
  }
  const start = Math.max(end - WINDOW_S, Math.min(oldest, end - MIN_WINDOW_S));
  return { start, end };
}

function rankStale(r: IRank, interval: number): boolean {
  return r.age === null || r.age > STALE_INTERVALS * interval;
}

interface IUpdates {
  __leptonUpdates?: number[];
}

/** Record one update's duration in `window.__leptonUpdates` (the last `UPDATES_KEPT`). */
function record(ms: number): void {
  const w = window as unknown as IUpdates;
  const list = Array.isArray(w.__leptonUpdates) ? w.__leptonUpdates : (w.__leptonUpdates = []);
  list.push(ms);
  if (list.length > UPDATES_KEPT) {
    list.splice(0, list.length - UPDATES_KEPT);
  }
}

/** Sees which charts are on screen (all of them where IntersectionObserver is missing). */
class Visibility {
  constructor(onShown: () => void) {
    if (typeof IntersectionObserver !== 'undefined') {
      this._observer = new IntersectionObserver(entries => {
        let shown = false;
        for (const e of entries) {
          if (e.isIntersecting) {
            this._visible.add(e.target);
            shown = true;
          } else {
            this._visible.delete(e.target);
          }
        }
        if (shown) {
          onShown();
        }
      });
    }
  }

  observe(node: Element): void {
    this._observer?.observe(node);
  }

  unobserve(node: Element): void {
    this._observer?.unobserve(node);
    this._visible.delete(node);
  }

  /** Whether `node` is on screen. */
  visible(node: Element): boolean {
    return this._observer === null || this._visible.has(node);
  }

  dispose(): void {
    this._observer?.disconnect();
    this._visible.clear();
  }

  private _observer: IntersectionObserver | null = null;
  private _visible = new Set<Element>();
}

/** One rank's row of the table: `tr.lepton-rank[data-rank]`. */
class RankRow {
  constructor(readonly rank: number, events: EventSource, onClick: () => void) {
    this.tr = el('tr', 'lepton-rank');
    this.tr.dataset.rank = String(rank);
    this.tr.tabIndex = 0;
    this.tr.title = `rank ${rank}: click for its large chart`;
    this.tr.addEventListener('click', onClick);
    this.tr.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        onClick();
      }
    });
    this._id = el('td', 'lepton-rank-id', String(rank));
    this._host = el('td', 'lepton-host');
    this._device = el('td', 'lepton-device');
    const stateCell = el('td', 'lepton-state-cell');
    this._state = el('span', 'lepton-state');
    this._staleBadge = el('span', 'lepton-rank-stale', 'stale');
    this._staleBadge.title = 'no recent sample from this rank';
    this._staleBadge.hidden = true;
    stateCell.append(this._state, this._staleBadge);
    const memoryCell = el('td', 'lepton-memory-cell');
    this._memory = el('div', 'lepton-memory');
    this._fill = el('div', 'lepton-memory-fill');
    const label = el('span', 'lepton-memory-label');
    label.append(this._label);
    this._memory.append(this._fill, label);
    memoryCell.append(this._memory);
    this.tr.append(this._id, this._host, this._device, stateCell, memoryCell);
    this.charts = SERIES.map(s => new Sparkline(s, rank, events));
    for (const chart of this.charts) {
      const td = el('td', 'lepton-chart-cell');
      td.append(chart.node);
      this.tr.append(td);
    }
  }

  readonly tr: HTMLTableRowElement;
  /** Its sparklines: memory, utilization, sent. */
  readonly charts: Sparkline[];
  /** The cluster version each chart was last drawn at. */
  readonly drawn: number[] = SERIES.map(() => -1);

  /** Whose utilization the rank's latest row gave. */
  get utilizationKind(): 'gpu' | 'cpu' {
    return this._prev?.utilizationKind ?? 'cpu';
  }

  /** Show `r`'s current state (touching only what changed since the last call). */
  update(r: IRank, stale: boolean): void {
    const p = this._prev;
    this._prev = r;
    if (p === null || p.host !== r.host) {
      setText(this._host, r.host ?? 'n/a');
    }
    if (p === null || p.device !== r.device || p.gpu !== r.gpu) {
      setText(this._device, r.gpu === null ? r.device : `${r.device} (GPU ${r.gpu})`);
    }
    if (p === null || p.state !== r.state) {
      this._state.textContent = r.state;
      this._state.className = `lepton-state lepton-state-${r.state}`;
    }
    if (stale !== this._stale) {
      this._stale = stale;
      toggle(this.tr, 'lepton-stale', stale);
      setHidden(this._staleBadge, !stale);
    }
    const m = r.memory;
    const pm = p?.memory;
    if (p === null || pm?.used !== m?.used || pm?.total !== m?.total || pm?.kind !== m?.kind) {
      this._drawMemory(m);
    }
    if (p === null || pm?.kind !== m?.kind || p.utilizationKind !== r.utilizationKind) {
      const memoryKind = m === null || m.kind === 'host' ? 'memory (RSS)' : 'GPU memory';
      const util = r.utilizationKind === 'gpu' ? 'GPU' : 'CPU';
      const more = 'last 5 minutes (click for the large chart)';
      this.charts[0].setTitle(`rank ${r.rank}: ${memoryKind}, bytes, ${more}`);
      this.charts[1].setTitle(`rank ${r.rank}: ${util} utilization, %, ${more}`);
      this.charts[2].setTitle(`rank ${r.rank}: bytes/s sent on all links, ${more}`);
    }
  }

  /**
   * Update the charts' figures from `h` (always), and redraw the plots that
   * are on screen: at most once in `every` versions, ranks taking turns (a
   * sparkline moves by a pixel every four seconds; its latest value is in
   * its label), at once when never drawn or not for longer.
   */
  updateCharts(
    h: RankHistory | undefined,
    version: number,
    every: number,
    window: IWindow,
    visible: (n: Element) => boolean
  ): void {
    if (h === undefined) {
      return;
    }
    const turn = version % every === this.rank % every;
    this.charts.forEach((chart, i) => {
      const ring = h.ring(chart.series);
      chart.setFigures(ring.length, ring.firstFinite(), ring.lastFinite());
      const drawn = this.drawn[i];
      if (drawn !== version && (turn || drawn < 0 || version - drawn >= every) && visible(chart.node)) {
        const [x, y] = decimate(h.time, ring, window.start, window.end, SPARK_BUCKETS);
        chart.draw(x, y, window);
        this.drawn[i] = version;
      }
    });
  }

  dispose(): void {
    for (const chart of this.charts) {
      chart.dispose();
    }
    this.tr.remove();
  }

  private _drawMemory(m: IMemory | null): void {
    if (m === null) {
      this._memory.removeAttribute('data-bytes');
      this._label.data = 'n/a';
      this._fill.style.width = '0%';
      this._memory.title = 'memory: not known yet';
      return;
    }
    setData(this._memory, 'bytes', String(Math.round(m.used)));
    this._label.data = m.total ? `${size(m.used)} / ${size(m.total)}` : size(m.used);
    const pct = m.total ? Math.min(100, (100 * m.used) / m.total) : 0;
    this._fill.style.width = `${pct.toFixed(1)}%`;
    this._memory.title = MEMORY_TITLES[m.kind];
  }

  private _prev: IRank | null = null;
  private _stale = false;
  private _id: HTMLTableCellElement;
  private _host: HTMLTableCellElement;
  private _device: HTMLTableCellElement;
  private _state: HTMLSpanElement;
  private _staleBadge: HTMLSpanElement;
  private _memory: HTMLDivElement;
  private _fill: HTMLDivElement;
  /** The memory label's text. */
  private _label = document.createTextNode('n/a');
}

/** One cluster's `section.lepton-cluster[data-cluster]`. */
class ClusterView {
  constructor(readonly id: string, private _visibility: Visibility, private _schedule: () => void) {
    this.section = el('section', 'lepton-cluster');
    this.section.dataset.cluster = id;
    const header = el('div', 'lepton-header');
    this._title = el('h3', 'lepton-title');
    this._updated = el('span', 'lepton-updated');
    this._staleMarker = el('span', 'lepton-stale-marker', 'stale');
    this._staleMarker.hidden = true;
    header.append(this._title, this._updated, this._staleMarker);

    const tableWrap = el('div', 'lepton-table-wrap');
    const table = el('table', 'lepton-ranks');
    const head = el('tr');
    for (const [text, title] of [
      ['rank', ''],
      ['host', ''],
      ['device', ''],
      ['state', ''],
      ['memory', 'memory now'],
      ['memory (5 min)', 'memory, last 5 minutes'],
      ['util. (5 min)', 'GPU or CPU utilization, last 5 minutes'],
      ['sent (5 min)', 'bytes/s sent, last 5 minutes']
    ]) {
      const th = el('th', undefined, text);
      if (title) {
        th.title = title;
      }
      head.append(th);
    }
    const thead = el('thead');
    thead.append(head);
    this._tbody = el('tbody');
    table.append(thead, this._tbody);
    tableWrap.append(table);

    this._topology = new TopologyView();
    const eventsWrap = el('div', 'lepton-events-wrap');
    this._eventsCaption = el('div', 'lepton-caption', 'events');
    this._events = el('ol', 'lepton-events');
    eventsWrap.append(this._eventsCaption, this._events);
    this._topology.node.prepend(el('div', 'lepton-caption', 'topology'));
    this.section.append(header, tableWrap, this._topology.node, eventsWrap);
    this._tableWrap = tableWrap;
  }

  readonly section: HTMLElement;

  /** Whether it was drawn stale (a change makes the next check redraw). */
  drawnStale = false;

  /** Whether `c` is stale at `now` (`performance.now()`). */
  static stale(c: ClusterState, now: number): boolean {
    const snap = c.snapshot;
    if (snap === null || c.stopped) {
      return false;
    }
    if (now - c.receivedAt > STALE_INTERVALS * snap.interval * 1000) {
      return true;
    }
    return snap.ranks.length > 0 && snap.ranks.every(r => rankStale(r, snap.interval));
  }

  /** Draw `c` as of `now`. */
  update(c: ClusterState, now: number): void {
    const snap = c.snapshot;
    if (snap === null) {
      return;
    }
    const stale = ClusterView.stale(c, now);
    this.drawnStale = stale;
    setText(this._title, `Cluster ${c.id}: ${snap.worldSize} ranks${snap.backend ? `, ${snap.backend}` : ''}`);
    setText(this._updated, c.stopped ? 'stopped' : `updated ${clock(snap.time)}`);
    toggle(this.section, 'lepton-stale', stale);
    toggle(this.section, 'lepton-stopped', c.stopped);
    setHidden(this._staleMarker, !stale);
    const interval = snap.interval;
    if (stale) {
      const silent = now - c.receivedAt > STALE_INTERVALS * interval * 1000;
      setText(this._staleMarker, silent ? 'stale: no new data' : 'stale: no rank sent recent data');
    }

    if (c.events.version !== this._eventsVersion) {
      this._eventsVersion = c.events.version;
      this._drawEvents(c.events.events);
      this._rankEvents.clear(); // the sparklines show the change in their next turn
      this._detailDrawn = Math.min(this._detailDrawn, -1); // the detail chart at once
    }

    const window = chartWindow(c, snap.time);
    this._syncRows(snap);
    const visible = (n: Element) => this._visibility.visible(n);
    const every = Math.max(1, Math.round(SPARK_REDRAW_S / interval));
    const topo: ITopologyRank[] = [];
    for (const r of snap.ranks) {
      const row = this._rows.get(r.rank)!;
      const rStale = rankStale(r, interval);
      row.update(r, rStale);
      row.updateCharts(c.ranks.get(r.rank), c.version, every, window, visible);
      topo.push({ rank: r.rank, host: r.host, state: r.state, device: r.device, stale: rStale });
    }
    this._updateDetail(c, window);
    this._topology.update(snap, topo);
  }

  dispose(): void {
    for (const row of this._rows.values()) {
      for (const chart of row.charts) {
        this._visibility.unobserve(chart.node);
      }
      row.dispose();
    }
    this._rows.clear();
    this._detail?.dispose();
    this._detail = null;
    this.section.remove();
  }

  /** The events to mark on `rank`'s charts: its own and the cluster's (null rank). */
  private _eventsOf(rank: number): readonly IEvent[] {
    let list = this._rankEvents.get(rank);
    if (list === undefined) {
      list = this._allEvents.filter(e => e.rank === null || e.rank === rank);
      this._rankEvents.set(rank, list);
    }
    return list;
  }

  /** Rows for exactly `snap`'s ranks, in rank order. */
  private _syncRows(snap: ISnapshot): void {
    const wanted = new Set<number>();
    for (const r of snap.ranks) {
      wanted.add(r.rank);
    }
    for (const [rank, row] of this._rows) {
      if (!wanted.has(rank)) {
        for (const chart of row.charts) {
          this._visibility.unobserve(chart.node);
        }
        row.dispose();
        this._rows.delete(rank);
        if (this._detail?.rank === rank) {
          this._closeDetail();
        }
      }
    }
    const children = this._tbody.children;
    snap.ranks.forEach((r, i) => {
      let row = this._rows.get(r.rank);
      if (row === undefined) {
        const rank = r.rank;
        row = new RankRow(rank, () => this._eventsOf(rank), () => this._toggleDetail(rank));
        this._rows.set(rank, row);
        for (const chart of row.charts) {
          this._visibility.observe(chart.node);
        }
        toggle(row.tr, 'lepton-selected', this._detail?.rank === rank);
      }
      if (children[i] !== row.tr) {
        this._tbody.insertBefore(row.tr, children[i] ?? null);
      }
    });
  }

  private _toggleDetail(rank: number): void {
    const open = this._detail?.rank === rank;
    this._closeDetail();
    if (!open) {
      const kind = this._rows.get(rank)?.utilizationKind ?? 'cpu';
      this._detail = new DetailChart(rank, kind, () => this._eventsOf(rank), () => {
        this._closeDetail();
        this._schedule();
      });
      this._tableWrap.after(this._detail.node);
      this._detailDrawn = -2; // just opened
      const row = this._rows.get(rank);
      if (row) {
        toggle(row.tr, 'lepton-selected', true);
      }
    }
    this._schedule();
  }

  private _closeDetail(): void {
    if (this._detail !== null) {
      const row = this._rows.get(this._detail.rank);
      if (row) {
        toggle(row.tr, 'lepton-selected', false);
      }
      this._detail.dispose();
      this._detail = null;
    }
  }

  private _updateDetail(c: ClusterState, window: IWindow): void {
    const detail = this._detail;
    if (detail === null || this._detailDrawn === c.version) {
      return;
    }
    const h = c.ranks.get(detail.rank);
    if (h !== undefined) {
      const opened = this._detailDrawn === -2;
      detail.update(h.data(), window, this._rows.get(detail.rank)?.utilizationKind ?? 'cpu');
      if (opened && typeof detail.node.scrollIntoView === 'function') {
        detail.node.scrollIntoView({ block: 'nearest' }); // below a long table: bring it on screen
      }
    }
    this._detailDrawn = c.version;
  }

  private _drawEvents(events: readonly IEvent[]): void {
    this._allEvents = events;
    const items: HTMLElement[] = [];
    for (const e of events.slice(0, EVENTS_SHOWN)) {
      const li = el('li', 'lepton-event');
      li.dataset.kind = e.kind;
      li.dataset.rank = e.rank === null ? '' : String(e.rank);
      li.append(el('span', 'lepton-event-time', clock(e.time)), el('span', 'lepton-event-text', e.text));
      items.push(li);
    }
    this._events.replaceChildren(...items);
    setText(this._eventsCaption, events.length === 0 ? 'events: none in the last 5 minutes' : 'events, newest first');
  }

  private _title: HTMLElement;
  private _updated: HTMLElement;
  private _staleMarker: HTMLElement;
  private _tbody: HTMLTableSectionElement;
  private _tableWrap: HTMLElement;
  private _rows = new Map<number, RankRow>();
  private _topology: TopologyView;
  private _events: HTMLOListElement;
  private _eventsCaption: HTMLElement;
  private _eventsVersion = -1;
  private _allEvents: readonly IEvent[] = [];
  private _rankEvents = new Map<number, readonly IEvent[]>();
  private _detail: DetailChart | null = null;
  private _detailDrawn = -1;
}

/**
 * The monitor: `node` (`div.lepton-monitor`) shows every cluster of its
 * store. `receive` takes one untrusted message (a JSON string or an object);
 * the view redraws once in the next animation frame, and by itself when a
 * cluster's data goes stale. Each redraw is measured (`lepton-update`
 * performance measures, and `window.__leptonUpdates`). The root's
 * `data-received` counts the messages received, once what they changed is
 * drawn (tests wait on it).
 */
export class MonitorView {
  constructor(options: IMonitorViewOptions = {}) {
    this.mode = options.mode ?? 'panel';
    this.store = options.store ?? new MonitorStore({ dropGone: this.mode === 'panel' });
    this.node = el('div', 'lepton-monitor');
    this.node.dataset.mode = this.mode;
    this._empty = el('p', 'lepton-empty', EMPTY_TEXT[this.mode]);
    this.node.append(this._empty);
    this._visibility = new Visibility(() => this.refresh());
    this._seenReceiveMs = this.store.receiveMs;
    this.node.dataset.received = String(this.store.received);
    this._unlisten = this.store.listen(changed => (changed ? this.refresh() : this._countReceived()));
    this._timer = window.setInterval(() => this._checkStale(), STALE_CHECK_MS);
    this.refresh();
  }

  /** "panel" or "widget". */
  readonly mode: MonitorMode;
  /** What it draws. */
  readonly store: MonitorStore;
  /** The root element, `div.lepton-monitor`. */
  readonly node: HTMLDivElement;

  /** Take one untrusted message (never throws); the view redraws in the next frame. */
  receive(data: unknown): void {
    this.store.receive(data);
  }

  /** Redraw in the next animation frame (once, however often it is called). */
  refresh(): void {
    if (this._frame !== 0 || this._disposed) {
      return;
    }
    this._frame = window.requestAnimationFrame(() => {
      this._frame = 0;
      this._redraw();
    });
  }

  /** Stop drawing and release the charts. */
  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.cancelAnimationFrame(this._frame);
    window.clearInterval(this._timer);
    this._unlisten();
    for (const view of this._clusters.values()) {
      view.dispose();
    }
    this._clusters.clear();
    this._visibility.dispose();
    this.node.remove();
  }

  /** Show how many messages were received, unless a redraw is due (it will). */
  private _countReceived(): void {
    if (this._frame === 0) {
      this.node.dataset.received = String(this.store.received);
    }
  }

  private _checkStale(): void {
    const now = performance.now();
    for (const [id, view] of this._clusters) {
      const c = this.store.clusters.get(id);
      if (c !== undefined && ClusterView.stale(c, now) !== view.drawnStale) {
        this.refresh();
        return;
      }
    }
  }

  private _redraw(): void {
    const t0 = performance.now();
    const pending = Math.max(0, this.store.receiveMs - this._seenReceiveMs);
    this._seenReceiveMs = this.store.receiveMs;
    const start = Math.max(0, t0 - pending);
    try {
      performance.mark('lepton-update-start', { startTime: start });
    } catch {
      // user timing is optional
    }
    try {
      this._draw(t0);
    } catch (e) {
      warn(`a redraw that failed (${String(e).slice(0, 200)})`);
    }
    this.node.dataset.received = String(this.store.received);
    // style and layout of what changed, now rather than after this callback, so that the
    // measure holds the whole update but the paint (the browser does them once either way)
    void this.node.offsetHeight;
    record(performance.now() - start);
    try {
      performance.measure('lepton-update', 'lepton-update-start');
      performance.clearMarks('lepton-update-start');
      if (++this._measures >= 2 * MEASURES_KEPT) {
        performance.clearMeasures('lepton-update');
        this._measures = 0;
      }
    } catch {
      // user timing is optional
    }
  }

  private _draw(now: number): void {
    const clusters = this.store.clusters;
    for (const [id, view] of this._clusters) {
      if (!clusters.has(id)) {
        view.dispose();
        this._clusters.delete(id);
      }
    }
    const ids = [...clusters.keys()].filter(id => clusters.get(id)!.snapshot !== null).sort();
    if (ids.length > 0) {
      this._empty.remove();
    } else if (this._empty.parentNode !== this.node) {
      this.node.prepend(this._empty);
    }
    const children = this.node.children;
    ids.forEach((id, i) => {
      let view = this._clusters.get(id);
      if (view === undefined) {
        view = new ClusterView(id, this._visibility, () => this.refresh());
        this._clusters.set(id, view);
      }
      if (children[i] !== view.section) {
        this.node.insertBefore(view.section, children[i] ?? null);
      }
      view.update(clusters.get(id)!, now);
    });
  }

  private _empty: HTMLElement;
  private _visibility: Visibility;
  private _clusters = new Map<string, ClusterView>();
  private _frame = 0;
  private _timer: number;
  private _unlisten: () => void;
  private _seenReceiveMs: number;
  private _measures = 0;
  private _disposed = false;
}
