/** One cluster's section of the monitor: header, ranks' table, detail chart, topology, events. */

import { DetailChart, IWindow, clock } from './charts';
import { ClusterState, WINDOW_S } from './history';
import { ITopologyRank, TopologyView } from './topology';
import { IEvent, ISnapshot } from './validate';
import { Visibility, el, setHidden, setText, toggle } from './dom';
import { RankRow, STALE_INTERVALS, rankStale } from './rank';

/** Events listed at most. */
const EVENTS_SHOWN = 20;
/** Seconds between redraws of one sparkline's plot, at most. */
const SPARK_REDRAW_S = 1;
/** The shortest x range of the charts, seconds (while the history is shorter). */
const MIN_WINDOW_S = 30;

/**
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

/** One cluster's `section.lepton-cluster[data-cluster]`. */
export class ClusterView {
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
