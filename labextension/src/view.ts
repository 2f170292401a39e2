/**
 * Drawing one cluster's snapshot: a table of ranks (placement, state, memory
 * bar, CPU) and a rank x rank matrix of link utilization in bytes/s. The
 * snapshot is the JSON that lepton_nb.metrics.snapshot builds.
 */

import { size } from './units';

export interface IMemory {
  kind: string;
  used: number;
  total: number | null;
}

export interface IRank {
  rank: number;
  host: string | null;
  pid: number | null;
  device: string;
  gpu: number | null;
  state: string;
  memory: IMemory | null;
  cpu_percent?: number | null;
}

export interface ILink {
  src: number;
  dst: number;
  bytes: number;
  rate: number;
}

export interface ISnapshot {
  type: 'snapshot';
  cluster: string;
  time: number;
  world_size: number;
  backend?: string;
  ranks: IRank[];
  links: ILink[];
}

function el(tag: string, cls?: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function memoryBar(memory: IMemory | null): HTMLElement {
  if (!memory) {
    return el('span', 'lepton-na', 'n/a');
  }
  const bar = el('div', 'lepton-memory');
  bar.dataset.bytes = String(Math.round(memory.used));
  bar.title = `${memory.kind} memory`;
  const fill = el('div', 'lepton-memory-fill');
  const pct = memory.total ? Math.min(100, (100 * memory.used) / memory.total) : 0;
  fill.style.width = `${pct.toFixed(1)}%`;
  const label = memory.total
    ? `${size(memory.used)} / ${size(memory.total)}`
    : size(memory.used);
  bar.append(fill, el('span', 'lepton-memory-label', label));
  return bar;
}

function rankList(snap: ISnapshot): HTMLElement {
  const list = el('div', 'lepton-ranks');
  for (const r of snap.ranks) {
    const row = el('div', 'lepton-rank');
    row.dataset.rank = String(r.rank);
    const device = r.gpu === null || r.gpu === undefined ? r.device : `${r.device} (GPU ${r.gpu})`;
    const cpu =
      r.cpu_percent === null || r.cpu_percent === undefined ? '' : `CPU ${r.cpu_percent.toFixed(0)}%`;
    const head = el('div', 'lepton-rank-head');
    head.append(
      el('span', 'lepton-rank-id', `rank ${r.rank}`),
      el('span', 'lepton-host', r.host ?? 'n/a'),
      el('span', 'lepton-device', device),
      el('span', `lepton-state lepton-state-${r.state}`, r.state),
      el('span', 'lepton-cpu', cpu)
    );
    row.append(head, memoryBar(r.memory));
    list.append(row);
  }
  return list;
}

function linkMatrix(snap: ISnapshot): HTMLElement {
  const ranks = snap.ranks.map(r => r.rank);
  const links = new Map<string, ILink>();
  let top = 1;
  for (const x of snap.links) {
    links.set(`${x.src}:${x.dst}`, x);
    top = Math.max(top, x.rate);
  }
  const sources = (snap.links.some(x => x.src === -1) ? [-1] : []).concat(ranks);
  const table = el('table', 'lepton-links');
  const head = el('tr');
  head.append(el('th', undefined, 'from \\ to'));
  for (const d of ranks) {
    head.append(el('th', undefined, String(d)));
  }
  table.append(head);
  for (const s of sources) {
    const row = el('tr');
    row.append(el('th', undefined, s === -1 ? 'notebook' : String(s)));
    for (const d of ranks) {
      const x = links.get(`${s}:${d}`);
      if (s === d || !x) {
        row.append(el('td', 'lepton-link-none', '·'));
        continue;
      }
      const td = el('td', 'lepton-link', size(x.rate, 'B/s'));
      td.append(el('div', 'lepton-link-total', size(x.bytes)));
      td.dataset.src = String(s);
      td.dataset.dst = String(d);
      td.title = `${size(x.bytes)} in all`;
      td.style.background = `rgba(21, 101, 192, ${(0.08 + (0.6 * x.rate) / top).toFixed(2)})`;
      row.append(td);
    }
    table.append(row);
  }
  return table;
}

/** One cluster's section of the panel. */
export function renderCluster(snap: ISnapshot): HTMLElement {
  const section = el('section', 'lepton-cluster');
  section.dataset.cluster = snap.cluster;
  const when = new Date(snap.time * 1000).toLocaleTimeString();
  const title = `Cluster ${snap.cluster}: ${snap.world_size} ranks, ${snap.backend ?? ''}`;
  section.append(
    el('h3', 'lepton-title', title),
    el('div', 'lepton-updated', `updated ${when}`),
    rankList(snap),
    el('div', 'lepton-caption', 'link utilization, bytes/s'),
    linkMatrix(snap)
  );
  return section;
}
