/**
 * The app of docs/testing.md: a node that takes work only while it is
 * registered with DDS, and can say why not. It sees the registrar only
 * through its snapshots, as any app that embeds it does.
 */
import type { Registrar } from 'posemesh-node-registration';

/** Why the node takes no work, or `ready`. */
export type Readiness = 'ready' | 'registering' | 'retrying' | 'stopped' | 'failed';

/** What the app makes of one snapshot. */
export function readinessOf(snapshot: ReturnType<Registrar['getSnapshot']>): Readiness {
  if (snapshot.matches('registered')) return 'ready';
  if (snapshot.matches('failed')) return 'failed';
  if (snapshot.matches('stopping') || snapshot.matches('stopped')) return 'stopped';
  if (snapshot.matches('backoff')) return 'retrying';
  return 'registering';
}

/** Follow a registrar: `current` is always what its latest snapshot means for the app. */
export function trackReadiness(registrar: Pick<Registrar, 'getSnapshot' | 'subscribe'>): { readonly current: Readiness; stop(): void } {
  let current = readinessOf(registrar.getSnapshot());
  const subscription = registrar.subscribe((snapshot) => {
    current = readinessOf(snapshot);
  });
  return {
    get current() {
      return current;
    },
    stop: () => subscription.unsubscribe(),
  };
}
