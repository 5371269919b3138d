/**
 * version — the node version string sent to DDS (PROTOCOL.md §4), and this
 * package's own version.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package name looked for when finding our own package.json. */
export const PACKAGE_NAME = 'posemesh-node-registration';

/** The semver 2.0.0 grammar (the regular expression suggested at semver.org). */
export const SEMVER_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** True when `text` is a semver 2.0.0 version (pre-release and build metadata allowed). */
export function isSemver(text: string): boolean {
  return SEMVER_PATTERN.test(text);
}

/** The outcome of {@link normalizeNodeVersion}. */
export interface NormalizedVersion {
  /** The version to send. */
  version: string;
  /** Why the fallback was used, or null. */
  warning: string | null;
}

const MAX_ECHO_CHARS = 64;

function echo(text: string): string {
  const chars = Array.from(text);
  return JSON.stringify(chars.length > MAX_ECHO_CHARS ? `${chars.slice(0, MAX_ECHO_CHARS).join('')}…` : text);
}

/**
 * Normalise the node version as the posemesh compute node does (PROTOCOL.md
 * §4): surrounding whitespace is ignored; a valid semver is used as is; a leading `v`/`V` is
 * dropped when the rest is valid semver; anything else, or nothing, gives
 * `fallback` with a warning that says what is sent instead.
 */
export function normalizeNodeVersion(input: string | undefined, fallback: string): NormalizedVersion {
  const raw = typeof input === 'string' ? input.trim() : '';
  if (raw === '') {
    return { version: fallback, warning: `node version not set; sending ${fallback} instead` };
  }
  if (isSemver(raw)) return { version: raw, warning: null };
  if ((raw.startsWith('v') || raw.startsWith('V')) && isSemver(raw.slice(1))) {
    return { version: raw.slice(1), warning: null };
  }
  return {
    version: fallback,
    warning: `node version ${echo(raw)} is not a valid semver; sending ${fallback} instead`,
  };
}

/**
 * The version in the nearest `package.json` named {@link PACKAGE_NAME} at or
 * above `startDir`, or undefined when there is none.
 */
export function findPackageVersion(startDir: string): string | undefined {
  let dir = startDir;
  for (;;) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (typeof pkg === 'object' && pkg !== null) {
        const { name, version } = pkg as { name?: unknown; version?: unknown };
        if (name === PACKAGE_NAME && typeof version === 'string') return version;
      }
    } catch {
      // No (readable, valid) package.json here: keep walking up.
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * This package's version, read from its package.json at load time (works
 * from `src/` under tsx and from `dist/src/` once built); `0.0.0` if not found.
 */
export const PACKAGE_VERSION: string = findPackageVersion(dirname(fileURLToPath(import.meta.url))) ?? '0.0.0';
