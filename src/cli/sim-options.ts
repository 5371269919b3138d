/** The DDS simulator's fault settings (shared by `dds-sim` and `dev`) as its faults. */
import type { DdsSimulatorFaults } from '../sim/dds-simulator.js';
import type { CommandSettings } from '../settings/table.js';

/** The settings of the simulator's faults: named as its {@link DdsSimulatorFaults}. */
type FaultSettings = Pick<CommandSettings<'dds-sim'>, keyof DdsSimulatorFaults>;

const FAULT_KEYS = [
  'failStatus',
  'failCount',
  'failureRate',
  'latencyMs',
  'retryAfterSecs',
  'pauseProbes',
  'nonceFailStatus',
  'verifyFailStatus',
  'forgetOnVerify',
] as const satisfies readonly (keyof DdsSimulatorFaults)[];

/** The faults the settings ask for (unset ones left out). */
export function faultsOf(settings: FaultSettings): DdsSimulatorFaults {
  return Object.fromEntries(FAULT_KEYS.flatMap((key) => (settings[key] === undefined ? [] : [[key, settings[key]]])));
}
