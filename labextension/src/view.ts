/**
 * The monitor's one renderer, used by the JupyterLab sidebar panel and by the
 * notebook widget alike: per cluster a header, the ranks' table (placement,
 * state, memory, and per rank sparklines of the last five minutes), the detail
 * chart of a clicked rank, the topology picture and the recent events.
 *
 * It redraws at most once per animation frame, reusing its DOM nodes and uPlot
 * instances; a sparkline's plot is only redrawn while it is on screen.
 */

import { MonitorStore } from './history';
import { warn } from './validate';
import { ClusterView } from './cluster';
import { Visibility, el } from './dom';

/** How the view is used: in the sidebar panel, or as a notebook's widget. */
export type MonitorMode = 'panel' | 'widget';

/** Options of a `MonitorView`. */
export interface IMonitorViewOptions {
  /** "panel" (the default): a gone cluster is removed; "widget": it is shown stopped. */
  mode?: MonitorMode;
  /** The store to draw (shared by several views); by default the view's own. */
  store?: MonitorStore;
}

/** Milliseconds between checks for data gone stale. */
const STALE_CHECK_MS = 250;
/** Update durations kept in `window.__leptonUpdates`. */
const UPDATES_KEPT = 500;
/** `lepton-update` measures kept before they are cleared. */
const MEASURES_KEPT = 200;

const EMPTY_TEXT: Record<MonitorMode, string> = {
  panel: 'No cluster running. Start one in a notebook with: %lepton_cluster start -n 2',
  widget: 'waiting for the first snapshot…'
};

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
