/**
 * The "Lepton" sidebar panel: a WebSocket to /lepton/api/metrics whose every
 * message goes to the monitor's renderer (`MonitorView`, mode "panel"); it
 * reconnects two seconds after the connection is lost.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { MonitorView } from './view';

/** Milliseconds before a lost connection is tried again. */
const RECONNECT_MS = 2000;

/** The sidebar panel (`#lepton-monitor.lepton-panel`): a heading, a status line, the monitor. */
export class MonitorPanel extends Widget {
  constructor(settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    super();
    this.id = 'lepton-monitor';
    this.addClass('lepton-panel');
    this._settings = settings;
    this._status = document.createElement('div');
    this._status.className = 'lepton-status';
    this.view = new MonitorView({ mode: 'panel' });
    const heading = document.createElement('h2');
    heading.textContent = 'Lepton cluster monitor';
    this.node.append(heading, this._status, this.view.node);
    this._connect();
  }

  /** The renderer the panel feeds. */
  readonly view: MonitorView;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._retry);
    const socket = this._socket;
    this._socket = null;
    socket?.close();
    this.view.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.view.refresh();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.view.refresh();
  }

  private _connect(): void {
    const { wsUrl, token } = this._settings;
    let url = URLExt.join(wsUrl, 'lepton/api/metrics');
    if (token) {
      url += `?token=${encodeURIComponent(token)}`;
    }
    this._setStatus('connecting…');
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      console.warn('lepton: could not open the metrics WebSocket', e);
      this._retryLater();
      return;
    }
    this._socket = socket;
    socket.onopen = () => this._setStatus('');
    socket.onmessage = event => this.view.receive(event.data);
    socket.onclose = () => {
      if (this._socket === socket) {
        this._retryLater();
      }
    };
  }

  private _retryLater(): void {
    if (this.isDisposed) {
      return;
    }
    this._setStatus('disconnected; retrying…');
    window.clearTimeout(this._retry);
    this._retry = window.setTimeout(() => this._connect(), RECONNECT_MS);
  }

  private _setStatus(text: string): void {
    if (this._status.textContent !== text) {
      this._status.textContent = text;
    }
  }

  private _settings: ServerConnection.ISettings;
  private _socket: WebSocket | null = null;
  private _retry = 0;
  private _status: HTMLElement;
}
