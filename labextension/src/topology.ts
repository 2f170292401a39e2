/**
 * The cluster's topology as a plain SVG picture: a box per host holding its
 * ranks as nodes coloured by state (the notebook is a node too, in its host's
 * box), and an edge per link that carried data, coloured by class and as wide
 * as its current rate (log scale). The layout is remade only when the hosts or
 * ranks change; each redraw touches only the attributes that changed.
 */

import { size } from './units';
import { ILink, ISnapshot, LINK_CLASSES, LinkClass, RankState } from './validate';

const SVG = 'http://www.w3.org/2000/svg';

/** The colour of each link class's edges. */
export const LINK_COLORS: Record<LinkClass, string> = {
  nvlink: '#76b900',
  pcie: '#00acc1',
  shm: '#8e24aa',
  sys: '#ff7043',
  network: '#6d4c41'
};

/** The colour of a node in each state (and of the notebook). */
export const STATE_COLORS: Record<RankState | 'notebook', string> = {
  idle: '#43a047',
  busy: '#1e88e5',
  dead: '#e53935',
  restarting: '#fb8c00',
  notebook: '#757575'
};

/** Edges drawn at most (the fastest, when there are more). */
const MAX_EDGES = 4096;

/** Layout, in SVG user units. */
const NODE_R = 10;
const STEP_X = 40;
const STEP_Y = 36;
const BOX_PAD = 8;
const BOX_HEAD = 16;
const BOX_GAP = 12;

/** The stroke width of an edge carrying `rate` bytes/s: 1 px at 1 kB/s and below, 8 px from 10 GB/s, in half pixels. */
export function edgeWidth(rate: number): number {
  if (!(rate > 0)) {
    return 1;
  }
  const t = (Math.log10(rate) - 3) / 7;
  return Math.round((1 + 7 * Math.min(1, Math.max(0, t))) * 2) / 2; // half pixels: fewer changes to draw
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

interface INode {
  g: SVGGElement;
  circle: SVGCircleElement;
  title: SVGTitleElement;
  x: number;
  y: number;
  /** What it shows now (`state`, stale), to touch the DOM only on a change. */
  shown: string;
}

interface IEdge {
  path: SVGPathElement;
  title: SVGTitleElement;
  /** How it looks now (class, width, idle), to touch the DOM only on a change. */
  look: string;
  /** What its tooltip says now (rate, bytes). */
  shown: string;
}

/** One rank as the picture shows it. */
export interface ITopologyRank {
  rank: number;
  host: string | null;
  state: RankState;
  device: string;
  stale: boolean;
}

function nodeName(rank: number): string {
  return rank === -1 ? 'notebook' : `rank ${rank}`;
}

/** `svg.lepton-topology` and its legend `.lepton-legend`, in `node`. */
export class TopologyView {
  constructor() {
    this.node = document.createElement('div');
    this.node.className = 'lepton-topology-wrap';
    this._svg = svg('svg', { class: 'lepton-topology', role: 'img' });
    this._svg.setAttribute('aria-label', 'hosts, ranks and links');
    this._edges = svg('g', { class: 'lepton-edges' });
    this._hosts = svg('g', { class: 'lepton-hosts' });
    this._svg.append(this._edges, this._hosts);
    this.node.append(this._svg, this._legend());
  }

  /** The picture and its legend. */
  readonly node: HTMLDivElement;

  /** Draw `snap`'s ranks (with their staleness in `ranks`) and links. */
  update(snap: ISnapshot, ranks: readonly ITopologyRank[]): void {
    const key = JSON.stringify([snap.notebookHost, ranks.map(r => [r.rank, r.host])]);
    if (key !== this._layoutKey) {
      this._layout(snap.notebookHost, ranks);
      this._layoutKey = key;
    }
    for (const r of ranks) {
      const n = this._nodes.get(r.rank);
      const shown = `${r.state} ${r.stale} ${r.device}`;
      if (n === undefined || n.shown === shown) {
        continue;
      }
      n.shown = shown;
      n.g.setAttribute('class', `lepton-node lepton-node-${r.state}${r.stale ? ' lepton-node-stale' : ''}`);
      n.circle.setAttribute('fill', STATE_COLORS[r.state]);
      n.title.textContent = `${nodeName(r.rank)} on ${r.host ?? 'an unknown host'}: ${r.state}${r.stale ? ' (stale)' : ''}, ${r.device}`;
    }
    this._drawEdges(snap.links);
  }

  private _legend(): HTMLElement {
    const legend = document.createElement('div');
    legend.className = 'lepton-legend';
    for (const cls of LINK_CLASSES) {
      const item = document.createElement('span');
      item.className = 'lepton-legend-item';
      item.dataset.class = cls;
      const swatch = document.createElement('span');
      swatch.className = 'lepton-legend-swatch';
      swatch.style.backgroundColor = LINK_COLORS[cls];
      const label = document.createElement('span');
      label.textContent = cls;
      item.append(swatch, label);
      legend.append(item);
    }
    const note = document.createElement('span');
    note.className = 'lepton-legend-note';
    note.textContent = 'width: bytes/s now';
    legend.append(note);
    return legend;
  }

  /** Place the host boxes in a grid, each holding its nodes in a grid. */
  private _layout(notebookHost: string | null, ranks: readonly ITopologyRank[]): void {
    const hosts = new Map<string, number[]>();
    const hostOf = (h: string | null) => h ?? 'unknown host';
    // the notebook first: in the box of its host when a rank shares it, else in its own
    hosts.set(notebookHost ?? 'notebook', [-1]);
    for (const r of ranks) {
      const h = hostOf(r.host);
      const list = hosts.get(h);
      if (list === undefined) {
        hosts.set(h, [r.rank]);
      } else {
        list.push(r.rank);
      }
    }
    const most = Math.max(1, ...[...hosts.values()].map(l => l.length));
    const cols = Math.ceil(Math.sqrt(most));
    const rows = Math.ceil(most / cols);
    const boxW = Math.max(96, cols * STEP_X + 2 * BOX_PAD - (STEP_X - 2 * NODE_R) + 8);
    const boxH = BOX_HEAD + rows * STEP_Y + BOX_PAD;
    const hostCols = Math.ceil(Math.sqrt(hosts.size));
    const hostRows = Math.ceil(hosts.size / hostCols);
    const width = hostCols * boxW + (hostCols - 1) * BOX_GAP + 2;
    const height = hostRows * boxH + (hostRows - 1) * BOX_GAP + 2;
    this._svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this._svg.setAttribute('width', String(width));
    this._svg.setAttribute('height', String(height));

    this._hosts.replaceChildren();
    this._edges.replaceChildren();
    this._nodes.clear();
    this._edgeMap.clear();
    let i = 0;
    for (const [host, members] of hosts) {
      const bx = 1 + (i % hostCols) * (boxW + BOX_GAP);
      const by = 1 + Math.floor(i / hostCols) * (boxH + BOX_GAP);
      i++;
      // the notebook alone, on a host without ranks: a box of its own, not a host box of the cluster
      const own = members.length === 1 && members[0] === -1;
      const box = svg('g', { class: own ? 'lepton-notebook-box' : 'lepton-host-box', transform: `translate(${bx},${by})` });
      box.dataset.host = host;
      const rect = svg('rect', { class: 'lepton-host-rect', width: boxW, height: boxH, rx: 4 });
      const label = svg('text', { class: 'lepton-host-label', x: 6, y: 12 });
      const chars = Math.floor((boxW - 10) / 6);
      label.textContent = host.length > chars ? `${host.slice(0, chars - 1)}…` : host;
      const tip = svg('title');
      tip.textContent = host;
      label.append(tip);
      box.append(rect, label);
      members.forEach((rank, j) => {
        const cx = BOX_PAD + NODE_R + 4 + (j % cols) * STEP_X;
        const cy = BOX_HEAD + NODE_R + 2 + Math.floor(j / cols) * STEP_Y;
        const g = svg('g', { class: rank === -1 ? 'lepton-node lepton-node-notebook' : 'lepton-node' });
        g.dataset.rank = String(rank);
        const circle = svg('circle', { cx, cy, r: NODE_R, fill: STATE_COLORS.notebook });
        const text = svg('text', { class: 'lepton-node-label', x: cx, y: rank === -1 ? cy + NODE_R + 9 : cy + 3.5 });
        text.textContent = rank === -1 ? 'notebook' : String(rank);
        const title = svg('title');
        title.textContent = rank === -1 ? `the notebook, on ${host}` : nodeName(rank);
        g.append(title, circle, text);
        box.append(g);
        this._nodes.set(rank, { g, circle, title, x: bx + cx, y: by + cy, shown: '' });
      });
      this._hosts.append(box);
    }
  }

  private _drawEdges(links: readonly ILink[]): void {
    const merged = new Map<string, ILink>();
    for (const l of links) {
      if (!(l.rate > 0 || l.bytes > 0) || !this._nodes.has(l.src) || !this._nodes.has(l.dst)) {
        continue;
      }
      const key = `${l.src}:${l.dst}`;
      const seen = merged.get(key);
      merged.set(key, seen ? { ...seen, bytes: seen.bytes + l.bytes, rate: seen.rate + l.rate } : l);
    }
    let shown = [...merged.entries()];
    if (shown.length > MAX_EDGES) {
      shown = shown.sort((a, b) => b[1].rate - a[1].rate).slice(0, MAX_EDGES);
    }
    const keep = new Set<string>();
    for (const [key, l] of shown) {
      keep.add(key);
      let edge = this._edgeMap.get(key);
      if (edge === undefined) {
        const a = this._nodes.get(l.src)!;
        const b = this._nodes.get(l.dst)!;
        // a slight curve, to the left of the direction: a -> b and b -> a stay apart
        const dx = b.x - a.x;
        const dy = b.y - a.y;
        const cx = (a.x + b.x) / 2 - dy * 0.15;
        const cy = (a.y + b.y) / 2 + dx * 0.15;
        const path = svg('path', {
          class: 'lepton-edge',
          d: `M${a.x},${a.y} Q${cx.toFixed(1)},${cy.toFixed(1)} ${b.x},${b.y}`,
          fill: 'none'
        });
        path.dataset.src = String(l.src);
        path.dataset.dst = String(l.dst);
        const title = svg('title');
        path.append(title);
        this._edges.append(path);
        edge = { path, title, look: '', shown: '' };
        this._edgeMap.set(key, edge);
      }
      const width = edgeWidth(l.rate);
      const look = `${l.linkClass} ${width} ${l.rate > 0}`;
      const { path, title } = edge;
      if (edge.look !== look) {
        edge.look = look;
        path.dataset.class = l.linkClass;
        path.setAttribute('stroke', LINK_COLORS[l.linkClass]);
        path.setAttribute('stroke-width', String(width));
        path.setAttribute('class', l.rate > 0 ? 'lepton-edge' : 'lepton-edge lepton-edge-idle');
      }
      const shown = `${l.linkClass} ${l.rate} ${l.bytes}`;
      if (edge.shown === shown) {
        continue;
      }
      edge.shown = shown;
      title.textContent =
        `${l.src === -1 ? 'notebook' : l.src} → ${l.dst === -1 ? 'notebook' : l.dst}: ` +
        `${size(l.rate, 'B/s')} (${l.linkClass}), ${size(l.bytes)} in all`;
    }
    for (const [key, edge] of this._edgeMap) {
      if (!keep.has(key)) {
        edge.path.remove();
        this._edgeMap.delete(key);
      }
    }
  }

  private _svg: SVGSVGElement;
  private _edges: SVGGElement;
  private _hosts: SVGGElement;
  private _layoutKey = '';
  private _nodes = new Map<number, INode>();
  private _edgeMap = new Map<string, IEdge>();
}
