/** Small DOM helpers of the monitor's renderer, and which of its charts are on screen. */

/** A new `tag` element with class `cls` and text `text`. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Set a node's text, only when it changed (no layout otherwise). */
export function setText(node: Node, text: string): void {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}

/** Add or remove class `cls`. */
export function toggle(node: Element, cls: string, on: boolean): void {
  if (node.classList.contains(cls) !== on) {
    node.classList.toggle(cls, on);
  }
}

/** Hide or show a node, only when that changed. */
export function setHidden(node: HTMLElement, hidden: boolean): void {
  if (node.hidden !== hidden) {
    node.hidden = hidden;
  }
}

/** Sees which charts are on screen (all of them where IntersectionObserver is missing). */
export class Visibility {
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
