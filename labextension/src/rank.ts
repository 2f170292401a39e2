/** One rank's row of the monitor's table: placement, state, memory and its sparklines. */

import { EventSource, IWindow, SPARK_WIDTH, Sparkline, setData } from './charts';
import { RankHistory, SERIES, decimate } from './history';
import { size } from './units';
import { IMemory, IRank } from './validate';
import { el, setHidden, setText, toggle } from './dom';

/** Data is stale once older than this many intervals. */
export const STALE_INTERVALS = 3;
/** Buckets a sparkline's points are thinned to (two points each: 2 px wide). */
const SPARK_BUCKETS = SPARK_WIDTH / 2;

const MEMORY_TITLES: Record<IMemory['kind'], string> = {
  gpu: 'GPU memory',
  torch: 'GPU memory (torch)',
  host: 'memory (RSS)'
};

/** Whether a rank's latest sample is too old to show as live (or there is none). */
export function rankStale(r: IRank, interval: number): boolean {
  return r.age === null || r.age > STALE_INTERVALS * interval;
}

/** One rank's row of the table: `tr.lepton-rank[data-rank]`. */
export class RankRow {
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
