/**
 * The notebook widget's front end, an anywidget module (bundled by esbuild to
 * lepton_nb/static/monitor.js). The kernel sends the cluster's snapshots as
 * custom messages; the same renderer as the sidebar panel draws them.
 *
 * One store per model, created in `initialize`, takes every message from the
 * start (before any view renders, and across re-renders), so the history
 * survives; each rendered view is a `MonitorView` (mode "widget") of it.
 */

import { MonitorStore } from './history';
import { MonitorView } from './view';

/** The part of an anywidget model this module uses. */
export interface IWidgetModel {
  on(event: 'msg:custom', callback: (msg: unknown, buffers?: unknown) => void): void;
  off(event: 'msg:custom', callback: (msg: unknown, buffers?: unknown) => void): void;
}

/** What anywidget passes to `initialize`. */
export interface IInitializeProps {
  model: IWidgetModel;
}

/** What anywidget passes to `render`. */
export interface IRenderProps {
  model: IWidgetModel;
  el: HTMLElement;
}

const stores = new WeakMap<IWidgetModel, MonitorStore>();
const cleanups = new WeakMap<IWidgetModel, () => void>();

/** The model's store, made (and fed) on first use. */
function storeOf(model: IWidgetModel): MonitorStore {
  let store = stores.get(model);
  if (store === undefined) {
    const s = new MonitorStore({ dropGone: false });
    const onMessage = (msg: unknown) => s.receive(msg);
    model.on('msg:custom', onMessage);
    store = s;
    stores.set(model, s);
    cleanups.set(model, () => {
      model.off('msg:custom', onMessage);
      stores.delete(model);
      cleanups.delete(model);
    });
  }
  return store;
}

export default {
  /** Start taking the model's messages; returns what stops it. */
  initialize({ model }: IInitializeProps): () => void {
    storeOf(model);
    return () => cleanups.get(model)?.();
  },

  /** Show the model's monitor in `el`; returns what removes it. */
  render({ model, el }: IRenderProps): () => void {
    const view = new MonitorView({ mode: 'widget', store: storeOf(model) });
    el.append(view.node);
    view.refresh();
    return () => view.dispose();
  }
};
