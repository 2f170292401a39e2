/**
 * The "Lepton" sidebar panel: a WebSocket to /lepton/api/metrics, redrawn at
 * most once per animation frame; it reconnects after the server restarts.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { ISnapshot, renderCluster } from './view';

/** Milliseconds before a lost connection is tried again. */
const RECONNECT_MS = 2000;

export class MonitorPanel extends Widget {
  constructor(settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    super();
    this.id = 'lepton-monitor';
    this.addClass('lepton-panel');
    this._settings = settings;
    this._status = document.createElement('div');
    this._status.className = 'lepton-status';
    this._body = document.createElement('div');
    this._body.className = 'lepton-body';
    const heading = document.createElement('h2');
    heading.textContent = 'Lepton cluster monitor';
    this.node.append(heading, this._status, this._body);
    this._connect();
  }

  /** The clusters shown, by id. */
  get clusters(): ReadonlyMap<string, ISnapshot> {
    return this._clusters;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._retry);
    this._socket?.close();
    super.dispose();
  }

  private _connect(): void {
    const { wsUrl, token } = this._settings;
    let url = URLExt.join(wsUrl, 'lepton/api/metrics');
    if (token) {
      url += `?token=${encodeURIComponent(token)}`;
    }
    this._setStatus('connecting…');
    const socket = new WebSocket(url);
    this._socket = socket;
    socket.onopen = () => this._setStatus('');
    socket.onmessage = event => this._receive(event.data);
    socket.onclose = () => {
      if (this.isDisposed) {
        return;
      }
      this._setStatus('disconnected; retrying…');
      this._retry = window.setTimeout(() => this._connect(), RECONNECT_MS);
    };
  }

  private _receive(data: unknown): void {
    let msg: any;
    try {
      msg = JSON.parse(String(data));
    } catch (e) {
      console.warn('lepton: ignored a message that is not JSON', e);
      return;
    }
    if (msg?.type === 'snapshot' && typeof msg.cluster === 'string') {
      this._clusters.set(msg.cluster, msg as ISnapshot);
    } else if (msg?.type === 'gone') {
      this._clusters.delete(msg.cluster);
    } else if (msg?.type !== 'hello') {
      console.warn('lepton: ignored an unknown message', msg);
      return;
    }
    this._schedule();
  }

  private _schedule(): void {
    if (this._frame === 0) {
      this._frame = window.requestAnimationFrame(() => {
        this._frame = 0;
        this._draw();
      });
    }
  }

  private _draw(): void {
    this._body.replaceChildren();
    if (this._clusters.size === 0) {
      const empty = document.createElement('p');
      empty.className = 'lepton-empty';
      empty.textContent = 'No cluster running. Start one in a notebook with: %lepton_cluster start -n 2';
      this._body.append(empty);
      return;
    }
    for (const id of [...this._clusters.keys()].sort()) {
      this._body.append(renderCluster(this._clusters.get(id)!));
    }
  }

  private _setStatus(text: string): void {
    this._status.textContent = text;
    if (text === '') {
      this._draw();
    }
  }

  private _settings: ServerConnection.ISettings;
  private _socket: WebSocket | null = null;
  private _retry = 0;
  private _frame = 0;
  private _status: HTMLElement;
  private _body: HTMLElement;
  private _clusters = new Map<string, ISnapshot>();
}
