/**
 * The monitor's time-series charts, drawn with uPlot: a rank's small
 * sparklines (one series each, no axes, legend or cursor: cheap to redraw) and
 * the larger detail chart of one rank (all three series, each on its own scale
 * and axis, a time axis and uPlot's live legend). Both mark the cluster's
 * events with vertical lines coloured by kind.
 */

import uPlot from 'uplot';

import { IRankData, SeriesName, WINDOW_S } from './history';
import { size } from './units';
import { EventKind, IEvent } from './validate';

/** The colour of each series' line. */
export const SERIES_COLORS: Record<SeriesName, string> = {
  memory: '#1e88e5',
  utilization: '#43a047',
  sent: '#fb8c00'
};

/** The colour of each kind of event's line (and of its dot in the events list). */
export const EVENT_COLORS: Record<EventKind, string> = {
  rank_died: '#e53935',
  rank_restarted: '#f9a825',
  push_started: '#00acc1',
  push_ended: '#00838f',
  cell_started: '#8e24aa',
  cell_ended: '#5e35b1'
};

/** Width and height of a sparkline, CSS pixels. */
export const SPARK_WIDTH = 72;
export const SPARK_HEIGHT = 22;
/** The steps of the detail chart's time axis, seconds. */
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
/** Below this width (CSS pixels) the detail chart leaves out the axis of bytes/s. */
const NARROW = 420;
/** Height of the detail chart's plot and axes, CSS pixels. */
const DETAIL_HEIGHT = 200;

/** The x range the charts show: the last `WINDOW_S` seconds up to `end`. */
export interface IWindow {
  start: number;
  end: number;
}

/** Events to mark on a chart, newest first. */
export type EventSource = () => readonly IEvent[];

/** How one series' values read: `1.2 GB`, `45 %`, `12.0 MB/s`. */
export function formatValue(series: SeriesName, v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) {
    return '–';
  }
  if (series === 'utilization') {
    return `${v.toFixed(v < 10 ? 1 : 0)} %`;
  }
  return series === 'sent' ? size(v, 'B/s') : size(v);
}

/** `HH:MM` (or `HH:MM:SS` with `seconds`), local time, of epoch seconds `t`. */
export function clock(t: number, seconds = true): string {
  const d = new Date(t * 1000);
  if (Number.isNaN(d.getTime())) {
    return '--:--';
  }
  const two = (n: number) => String(n).padStart(2, '0');
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  return seconds ? `${hm}:${two(d.getSeconds())}` : hm;
}

function alpha(color: string, a: string): string {
  return color + a; // #rrggbb + alpha hex
}

/** A uPlot plugin drawing each event in the x range as a vertical line (one path per colour). */
function eventLines(events: EventSource, width: number, alphaOf: number): uPlot.Plugin {
  return {
    hooks: {
      draw: (u: uPlot) => {
        const list = events();
        if (list.length === 0) {
          return;
        }
        const { left, top, width: w, height } = u.bbox;
        const scale = u.scales.x;
        const lo = scale.min ?? -Infinity;
        const hi = scale.max ?? Infinity;
        const paths = new Map<string, Path2D>();
        for (const e of list) {
          if (!(e.time >= lo && e.time <= hi)) {
            continue;
          }
          const x = Math.round(u.valToPos(e.time, 'x', true));
          if (!(x >= left && x <= left + w)) {
            continue;
          }
          const color = EVENT_COLORS[e.kind];
          let path = paths.get(color);
          if (path === undefined) {
            path = new Path2D();
            paths.set(color, path);
          }
          path.moveTo(x, top);
          path.lineTo(x, top + height);
        }
        if (paths.size === 0) {
          return;
        }
        const ctx = u.ctx;
        ctx.save();
        ctx.lineWidth = width * (window.devicePixelRatio || 1);
        ctx.globalAlpha = alphaOf;
        for (const [color, path] of paths) {
          ctx.strokeStyle = color;
          ctx.stroke(path);
        }
        ctx.restore();
      }
    }
  };
}

/** The y range of a series for data from `min` to `max` (nulls when there is none). */
function yRange(series: SeriesName, min: number | null, max: number | null): uPlot.Range.MinMax {
  const top = max !== null && Number.isFinite(max) && max > 0 ? max : 0;
  if (series === 'utilization') {
    return [0, Math.max(100, top)];
  }
  return [0, top > 0 ? top * 1.1 : 1];
}

/** A sparkline's y range: memory from its lowest to its highest value (its trend shows), the rest from 0. */
function sparkRange(series: SeriesName, min: number | null, max: number | null): uPlot.Range.MinMax {
  if (series !== 'memory' || min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    return yRange(series, min, max);
  }
  const pad = Math.max((max - min) * 0.1, max * 0.01, 1);
  return [Math.max(0, min - pad), max + pad];
}

/**
 * One series of one rank as a sparkline: `div.lepton-chart` carrying
 * `data-series`, `data-rank`, and (see `setFigures`) the points its ring
 * buffer holds (`data-points`) and their first and last values
 * (`data-first`, `data-last`: numbers, empty when there is none); its
 * plot is redrawn by `draw`.
 */
export class Sparkline {
  constructor(series: SeriesName, rank: number, events: EventSource) {
    this.series = series;
    this.node = document.createElement('div');
    this.node.className = 'lepton-chart';
    this.node.dataset.series = series;
    this.node.dataset.rank = String(rank);
    this.node.dataset.points = '0';
    this.node.dataset.first = '';
    this.node.dataset.last = '';
    const plot = document.createElement('div');
    plot.className = 'lepton-chart-plot';
    const value = document.createElement('span');
    value.className = 'lepton-chart-value';
    value.append(this._value);
    this.node.append(plot, value);
    const color = SERIES_COLORS[series];
    const opts: uPlot.Options = {
      width: SPARK_WIDTH,
      height: SPARK_HEIGHT,
      pxAlign: 1,
      padding: [2, 1, 1, 1],
      legend: { show: false },
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      axes: [{ show: false }, { show: false }],
      scales: {
        x: { time: false, range: () => [this._window.start, this._window.end] },
        y: { range: (_u, min, max) => sparkRange(series, min, max) }
      },
      series: [{}, { stroke: color, width: 1, fill: alpha(color, '22'), points: { show: false } }],
      plugins: [eventLines(events, 1, 0.45)]
    };
    this._plot = new uPlot(opts, [[], []], plot);
  }

  /** Which series it draws. */
  readonly series: SeriesName;
  /** The chart's container. */
  readonly node: HTMLDivElement;

  /** Set its tooltip (once it changes). */
  setTitle(title: string): void {
    if (this._title !== title) {
      this._title = title;
      this.node.title = title;
    }
  }

  /** Show the figures of its ring buffer: how many points, the first and last value (NaN: none). */
  setFigures(points: number, first: number, last: number): void {
    if (points !== this._points) {
      this._points = points;
      this.node.setAttribute('data-points', String(points));
    }
    if (!Object.is(first, this._first)) {
      this._first = first;
      this.node.setAttribute('data-first', Number.isFinite(first) ? String(first) : '');
    }
    if (!Object.is(last, this._last)) {
      this._last = last;
      this.node.setAttribute('data-last', Number.isFinite(last) ? String(last) : '');
      this._value.data = formatValue(this.series, Number.isFinite(last) ? last : null);
    }
  }

  /** Redraw the plot: values `y` at times `x` (epoch s), over `window`. */
  draw(x: number[], y: (number | null)[], window: IWindow): void {
    this._window = window;
    const plot = this._plot;
    plot.batch(() => plot.setData([x, y]));
  }

  dispose(): void {
    this._plot.destroy();
    this.node.remove();
  }

  private _plot: uPlot;
  /** The value label's text (changing a Text node's data is cheaper than its parent's textContent). */
  private _value = document.createTextNode('–');
  private _window: IWindow = { start: 0, end: WINDOW_S };
  private _title = '';
  private _points = 0;
  private _first = NaN;
  private _last = NaN;
}

/** Set `node.dataset[key]` when it differs. */
export function setData(node: HTMLElement | SVGElement, key: string, value: string): void {
  if (node.dataset[key] !== value) {
    node.dataset[key] = value;
  }
}

/** Bytes on an axis: `1.2 GB`, `400 MB/s` (no `.0`: the labels are short). */
function bytesAxis(unit: string): uPlot.Axis.DynamicValues {
  return (_u, splits) => splits.map(v => (v === null || v === undefined ? '' : size(v, unit).replace('.0 ', ' ')));
}

/**
 * The larger chart of one rank: `div.lepton-detail[data-rank]` with a title,
 * a close button (`.lepton-detail-close`) and one uPlot holding memory (bytes,
 * left axis), utilization (%, right) and bytes/s sent (right), over time.
 */
export class DetailChart {
  constructor(rank: number, utilizationKind: 'gpu' | 'cpu', events: EventSource, onClose: () => void) {
    this.rank = rank;
    this.node = document.createElement('div');
    this.node.className = 'lepton-detail';
    this.node.dataset.rank = String(rank);
    const head = document.createElement('div');
    head.className = 'lepton-detail-head';
    this._title = document.createElement('span');
    this._title.className = 'lepton-detail-title';
    const close = document.createElement('button');
    close.className = 'lepton-detail-close';
    close.type = 'button';
    close.title = 'Close';
    close.setAttribute('aria-label', 'Close the chart');
    close.textContent = '×';
    close.addEventListener('click', e => {
      e.stopPropagation();
      onClose();
    });
    head.append(this._title, close);
    this._plotNode = document.createElement('div');
    this._plotNode.className = 'lepton-detail-plot';
    this.node.append(head, this._plotNode);
    this._utilizationKind = utilizationKind;
    this._title.textContent = this._titleText();
    this._events = events;
  }

  /** Whose series it draws. */
  readonly rank: number;
  readonly node: HTMLDivElement;

  /** Redraw with `data` over `window` (creating the plot on the first call, once it is in the page). */
  update(data: IRankData, window: IWindow, utilizationKind: 'gpu' | 'cpu'): void {
    this._window = window;
    this._data = [data.x, data.memory, data.utilization, data.sent];
    if (utilizationKind !== this._utilizationKind) {
      this._utilizationKind = utilizationKind;
      this._title.textContent = this._titleText();
      this._plot?.destroy();
      this._plot = null;
    }
    if (this._plot === null) {
      this._width = this._measure(); // once: later widths come from the ResizeObserver
      this._plot = this._create(this._data);
      this._showLatestSoon();
    } else {
      const plot = this._plot;
      const aligned = this._data;
      plot.batch(() => plot.setData(aligned));
      this._showLatest();
    }
  }

  dispose(): void {
    this._resize?.disconnect();
    this._plot?.destroy();
    this._plot = null;
    this.node.remove();
  }

  /** With the pointer off the plot, the legend reads the latest values. */
  private _showLatest(): void {
    const plot = this._plot;
    const n = this._data[0].length;
    const left = plot?.cursor.left;
    if (plot && n > 0 && (left === undefined || left < 0)) {
      plot.setLegend({ idx: n - 1 }, false);
    }
  }

  /** `_showLatest` once uPlot has drawn what it queued (a new plot, a new size). */
  private _showLatestSoon(): void {
    queueMicrotask(() => this._showLatest());
  }

  private _titleText(): string {
    const util = this._utilizationKind === 'gpu' ? 'GPU' : 'CPU';
    return `Rank ${this.rank}, last 5 minutes: memory, ${util} utilization, bytes/s sent`;
  }

  /** The plot's width for a container `w` px wide (480 while it is not laid out). */
  private static _fit(w: number): number {
    return w > 120 ? Math.floor(w - 10) : 480;
  }

  private _measure(): number {
    return DetailChart._fit(this.node.clientWidth);
  }

  /** Follow the container's width; a narrow plot has no axis of its own for bytes/s. */
  private _resized(w: number): void {
    const width = DetailChart._fit(w);
    if (this._plot === null || Math.abs(width - this._width) < 2) {
      return;
    }
    const narrow = width < NARROW;
    this._width = width;
    if (narrow !== this._narrow) {
      this._plot.destroy();
      this._plot = this._create(this._data);
    } else {
      this._plot.setSize({ width, height: DETAIL_HEIGHT });
    }
    this._showLatestSoon();
  }

  private _create(data: uPlot.AlignedData): uPlot {
    this._narrow = this._width < NARROW;
    if (this._resize === null && typeof ResizeObserver !== 'undefined') {
      this._resize = new ResizeObserver(entries => {
        const box = entries[entries.length - 1]?.contentRect;
        if (box) {
          this._resized(box.width);
        }
      });
      this._resize.observe(this.node);
    }
    const style = getComputedStyle(this.node);
    const ink = style.color || '#666';
    const grid = { stroke: 'rgba(128,128,128,0.2)', width: 1 };
    const util = this._utilizationKind === 'gpu' ? 'GPU %' : 'CPU %';
    const opts: uPlot.Options = {
      width: this._width,
      height: DETAIL_HEIGHT,
      pxAlign: 1,
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: true, range: () => [this._window.start, this._window.end] },
        bytes: { range: (_u, min, max) => yRange('memory', min, max) },
        percent: { range: (_u, min, max) => yRange('utilization', min, max) },
        rate: { range: (_u, min, max) => yRange('sent', min, max) }
      },
      axes: [
        { stroke: ink, grid, ticks: grid, space: 80, incrs: TIME_INCRS, values: (_u, splits, _i, _space, incr) => splits.map(v => clock(v, incr < 60)) },
        { scale: 'bytes', stroke: SERIES_COLORS.memory, grid, ticks: grid, size: 56, values: bytesAxis('B') },
        {
          scale: 'percent',
          side: 1,
          stroke: SERIES_COLORS.utilization,
          grid: { show: false },
          ticks: grid,
          size: 44,
          values: (_u, splits) => splits.map(v => `${v}%`)
        },
        {
          scale: 'rate',
          side: 1,
          stroke: SERIES_COLORS.sent,
          grid: { show: false },
          ticks: grid,
          size: 76,
          show: !this._narrow,
          values: bytesAxis('B/s')
        }
      ],
      series: [
        { label: 'time', value: (_u, v) => (v === null || v === undefined ? '–' : clock(v, true)) },
        {
          label: 'memory',
          scale: 'bytes',
          stroke: SERIES_COLORS.memory,
          width: 1.5,
          value: (_u, v) => formatValue('memory', v)
        },
        {
          label: util,
          scale: 'percent',
          stroke: SERIES_COLORS.utilization,
          width: 1.5,
          value: (_u, v) => formatValue('utilization', v)
        },
        {
          label: 'sent',
          scale: 'rate',
          stroke: SERIES_COLORS.sent,
          width: 1.5,
          value: (_u, v) => formatValue('sent', v)
        }
      ],
      plugins: [eventLines(this._events, 1.5, 0.8)]
    };
    return new uPlot(opts, data, this._plotNode);
  }

  private _title: HTMLSpanElement;
  private _plotNode: HTMLDivElement;
  private _plot: uPlot | null = null;
  private _utilizationKind: 'gpu' | 'cpu';
  private _events: EventSource;
  private _window: IWindow = { start: 0, end: WINDOW_S };
  private _data: uPlot.AlignedData = [[], [], [], []];
  private _width = 480;
  private _narrow = false;
  private _resize: ResizeObserver | null = null;
}
