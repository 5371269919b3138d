import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PACKAGE_VERSION, findPackageVersion, isSemver, normalizeNodeVersion } from '../../src/version.js';
import { tempDir } from '../support/index.js';

const FALLBACK = '9.9.9';

describe('normalizeNodeVersion', () => {
  it('sends a valid semver as is', () => {
    for (const v of ['1.0.0', '0.0.0', '10.20.30', '1.2.3-alpha.1', '1.2.3-0.3.7', '1.0.0-x-y-z.--', '1.2.3+build.5', '1.2.3-rc.1+sha.abc']) {
      assert.deepEqual(normalizeNodeVersion(v, FALLBACK), { version: v, warning: null }, v);
    }
  });

  it('drops a leading v or V when the rest is valid semver', () => {
    assert.deepEqual(normalizeNodeVersion('v1.2.3', FALLBACK), { version: '1.2.3', warning: null });
    assert.deepEqual(normalizeNodeVersion('V2.0.0-beta+exp.sha.5114f85', FALLBACK), {
      version: '2.0.0-beta+exp.sha.5114f85',
      warning: null,
    });
  });

  it('ignores surrounding whitespace', () => {
    assert.deepEqual(normalizeNodeVersion('  v1.2.3\n', FALLBACK), { version: '1.2.3', warning: null });
  });

  it('falls back with a warning for anything else', () => {
    for (const v of ['1.2', '01.2.3', '1.2.3-01', 'vv1.2.3', 'v', 'latest', '1.2.3.4', '1.2.3-', '1.2.3+', 'v 1.2.3', 'x1.2.3']) {
      const r = normalizeNodeVersion(v, FALLBACK);
      assert.equal(r.version, FALLBACK, v);
      assert.ok(r.warning !== null && r.warning.includes(FALLBACK), v);
      assert.ok(r.warning.includes('not a valid semver'), r.warning);
    }
  });

  it('falls back with a warning when empty or missing', () => {
    for (const v of [undefined, '', '   ']) {
      const r = normalizeNodeVersion(v, FALLBACK);
      assert.equal(r.version, FALLBACK);
      assert.match(r.warning ?? '', /not set/);
    }
  });

  it('does not echo an absurdly long input in full', () => {
    const r = normalizeNodeVersion('x'.repeat(10_000), FALLBACK);
    assert.ok((r.warning ?? '').length < 200);
  });
});

describe('package version', () => {
  it('PACKAGE_VERSION is the version in package.json', () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const pkg = JSON.parse(fs.readFileSync(path.join(here, '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.equal(PACKAGE_VERSION, pkg.version);
    assert.ok(isSemver(PACKAGE_VERSION));
  });

  it('findPackageVersion walks up to the package.json with our name', (t) => {
    const root = tempDir(t, 'pnr-version-');
    fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'posemesh-node-registration', version: '4.5.6' }));
    const inner = path.join(root, 'node_modules', 'other');
    fs.mkdirSync(path.join(inner, 'dist', 'src'), { recursive: true });
    fs.writeFileSync(path.join(inner, 'package.json'), JSON.stringify({ name: 'other', version: '1.0.0' }));
    fs.writeFileSync(path.join(inner, 'dist', 'package.json'), '{ not json');
    assert.equal(findPackageVersion(path.join(inner, 'dist', 'src')), '4.5.6');
  });

  it('findPackageVersion returns undefined when there is none', (t) => {
    const root = tempDir(t, 'pnr-version-');
    // Walking up from a temp dir reaches / without meeting our package.
    assert.equal(findPackageVersion(root), undefined);
  });
});
