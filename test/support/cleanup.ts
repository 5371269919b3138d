/**
 * Cleanup, last registered first: every helper of test/support tears down
 * through {@link onCleanup}, so that a child is killed before its data
 * directory goes and a registrar stops before its DDS closes (`node:test`
 * runs `t.after` hooks in the order they were added, hence the stack).
 *
 * ```ts
 * const dir = tempDir(t);          // removed last
 * const dds = await startFakeDds(t);
 * onCleanup(t, () => actor.stop()); // runs first
 * ```
 */

/** Something that can register cleanup: a `node:test` test context, or a {@link CleanupStack}. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** Cleanup for scripts outside `node:test` (the benchmarks): {@link run} calls the functions last first. */
export class CleanupStack implements Cleanup {
  readonly #fns: (() => unknown)[] = [];

  after(fn: () => unknown): void {
    this.#fns.push(fn);
  }

  /** Run every registered function, last first; one that throws does not stop the others. Returns what they threw. */
  async run(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (let fn = this.#fns.pop(); fn !== undefined; fn = this.#fns.pop()) {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    }
    return errors;
  }
}

const stacks = new WeakMap<Cleanup, CleanupStack>();

/** The stack of `t`: `t` itself when it is one, else one stack run by a single `t.after` hook (which rethrows the first error). */
function stackOf(t: Cleanup): CleanupStack {
  if (t instanceof CleanupStack) return t;
  let stack = stacks.get(t);
  if (stack === undefined) {
    const created = new CleanupStack();
    stacks.set(t, created);
    t.after(async () => {
      const [first] = await created.run();
      if (first !== undefined) throw first;
    });
    stack = created;
  }
  return stack;
}

/** Run `fn` when `t` ends, before everything registered through here earlier. */
export function onCleanup(t: Cleanup, fn: () => unknown): void {
  stackOf(t).after(fn);
}
