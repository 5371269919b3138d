/**
 * The real DDS simulator in a test: started on a free port, its events and
 * log lines recorded, stopped at cleanup (after `onStop`, which sees them all).
 */
import { MemoryLogger } from '../../src/log.js';
import { DdsSimulator, type DdsSimulatorEvent, type DdsSimulatorOptions } from '../../src/sim/dds-simulator.js';
import { onCleanup, type Cleanup } from './cleanup.js';

/** A running simulator, what it said and what it did. */
export interface SimulatorHarness {
  sim: DdsSimulator;
  url: string;
  events: DdsSimulatorEvent[];
  logger: MemoryLogger;
  /** The events of one type, in order. */
  of<T extends DdsSimulatorEvent['type']>(type: T): Extract<DdsSimulatorEvent, { type: T }>[];
}

export async function startSimulator(
  t: Cleanup,
  options: DdsSimulatorOptions = {},
  onStop?: (h: SimulatorHarness) => void,
): Promise<SimulatorHarness> {
  const logger = new MemoryLogger();
  const sim = new DdsSimulator({ logger, ...options });
  const events: DdsSimulatorEvent[] = [];
  sim.on((e) => events.push(e));
  const { url } = await sim.start();
  const harness: SimulatorHarness = {
    sim,
    url,
    events,
    logger,
    of: <T extends DdsSimulatorEvent['type']>(type: T) => events.filter((e): e is Extract<DdsSimulatorEvent, { type: T }> => e.type === type),
  };
  onCleanup(t, async () => {
    await sim.stop();
    onStop?.(harness);
  });
  return harness;
}
