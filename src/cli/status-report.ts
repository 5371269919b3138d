/** What `status` reads from a data directory (loaded only when `status` runs). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { healthcheckAgeMs, lastHealthcheckAtMs } from '../../machines/registrar.js';
import { StateStore } from '../state/store.js';
import type { RegistrationStatus } from '../state/state-file.js';
import { silentLogger } from '../log.js';

/**
 * Whether the state file is there: `missing` (the data directory exists, the
 * file does not: no registrar has run with this data directory yet) and
 * `no-data-dir` (not even the directory: most likely a wrong data directory setting) are
 * not `disconnected`, which only a state file can say.
 */
export type StateFileStatus = 'present' | 'missing' | 'no-data-dir';

/** What `status` reports. */
export interface StatusReport {
  /** The status in the state file, or `null` when there is none ({@link stateFile}). */
  status: RegistrationStatus | null;
  stateFile: StateFileStatus;
  healthy: boolean;
  lastHealthcheck: string | null;
  ageSecs: number | null;
  intervalSecs: number;
  /** The state file's absolute path. */
  path: string;
}

function stateFileStatus(file: string): StateFileStatus {
  // lstat: whatever is at the path (even what the store refuses to read) is "there".
  if (fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined) return 'present';
  return fs.statSync(path.dirname(file), { throwIfNoEntry: false })?.isDirectory() === true ? 'missing' : 'no-data-dir';
}

/** Judge a data directory's state file (exported for tests and embedding hosts). */
export function readStatusReport(dataDir: string, intervalSecs: number, now = Date.now()): StatusReport {
  const store = new StateStore({ dir: dataDir, logger: silentLogger });
  const stateFile = stateFileStatus(store.path);
  const state = store.read();
  const lastMs = lastHealthcheckAtMs(state);
  const ageMs = healthcheckAgeMs(state, now);
  const ageSecs = ageMs === null ? null : ageMs / 1000;
  const present = stateFile === 'present';
  const healthy = present && state.status === 'registered' && ageSecs !== null && ageSecs <= intervalSecs;
  return {
    status: present ? state.status : null,
    stateFile,
    healthy,
    lastHealthcheck: present && lastMs !== null ? new Date(lastMs).toISOString() : null,
    ageSecs: present && ageSecs !== null ? Math.round(ageSecs * 10) / 10 : null,
    intervalSecs,
    path: store.path,
  };
}
