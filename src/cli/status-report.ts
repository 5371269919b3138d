/** What `status` reads from a data directory (loaded only when `status` runs). */
import { healthcheckAgeMs, lastHealthcheckAtMs } from '../../machines/registrar.js';
import { StateStore } from '../state/store.js';
import { silentLogger } from '../log.js';

/** What `status` reports. */
export interface StatusReport {
  status: string;
  healthy: boolean;
  lastHealthcheck: string | null;
  ageSecs: number | null;
  intervalSecs: number;
  path: string;
}

/** Judge a data directory's state file (exported for tests and embedding hosts). */
export function readStatusReport(dataDir: string, intervalSecs: number, now = Date.now()): StatusReport {
  const store = new StateStore({ dir: dataDir, logger: silentLogger });
  const state = store.read();
  const lastMs = lastHealthcheckAtMs(state);
  const ageMs = healthcheckAgeMs(state, now);
  const ageSecs = ageMs === null ? null : ageMs / 1000;
  const healthy = state.status === 'registered' && ageSecs !== null && ageSecs <= intervalSecs;
  return {
    status: state.status,
    healthy,
    lastHealthcheck: lastMs === null ? null : new Date(lastMs).toISOString(),
    ageSecs: ageSecs === null ? null : Math.round(ageSecs * 10) / 10,
    intervalSecs,
    path: store.path,
  };
}
