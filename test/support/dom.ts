/**
 * The little of the DOM the browser tests' page functions use, typed: the
 * project compiles without `lib.dom` (it would retype Node's `fetch` and
 * timers everywhere). A function passed to `page.evaluate` runs in the page,
 * so it imports nothing at run time; it reaches the page's globals with
 * `(globalThis as unknown as PageGlobals)`.
 */

export interface DomRect {
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
  readonly width: number;
  readonly height: number;
}

export interface DomElement {
  textContent: string | null;
  innerHTML: string;
  readonly innerText: string;
  readonly outerHTML: string;
  readonly className: string;
  readonly dataset: Record<string, string | undefined>;
  readonly style: Record<string, string>;
  /** On an `<svg>`. */
  readonly viewBox?: { readonly baseVal: { readonly width: number; readonly height: number } };
  getAttribute(name: string): string | null;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement> & Iterable<DomElement>;
  getBoundingClientRect(): DomRect;
  append(...nodes: DomElement[]): void;
  remove(): void;
}

export interface PageGlobals {
  document: {
    readonly body: DomElement;
    readonly documentElement: DomElement;
    createElement(tag: string): DomElement;
    querySelector(selector: string): DomElement | null;
    querySelectorAll(selector: string): ArrayLike<DomElement> & Iterable<DomElement>;
  };
  MutationObserver: new (callback: () => void) => { observe(target: unknown, options: Record<string, unknown>): void };
  [name: string]: unknown;
}
