/**
 * The configuration tables of docs/operating.md and docs/embedding.md are
 * what scripts/gen-settings.ts generates from the settings table, as
 * docs/statechart.md is the statechart's (test/machine/diagram.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyRegions, renderCommandTable, renderConfigTable, SETTINGS_DOCS } from '../../scripts/gen-settings.js';
import { flagOfSpec, keysOfGroups, SETTING_KEYS, specOf } from '../../src/settings/table.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('the generated settings docs', () => {
  for (const doc of SETTINGS_DOCS) {
    it(`${path.relative(ROOT, doc.path)} is up to date (run \`npm run docs:settings\`)`, () => {
      const onDisk = readFileSync(doc.path, 'utf8');
      assert.ok(applyRegions(onDisk, doc.regions) === onDisk, `${doc.path} is out of date: run \`npm run docs:settings\` and commit it`);
    });
  }

  it('lists every setting: each variable and flag in the command tables, each registrar key in the config table', () => {
    const tables = renderCommandTable('registrar', 'server', 'logging') + renderCommandTable('simulator');
    for (const key of SETTING_KEYS) {
      const spec = specOf(key);
      assert.ok(tables.includes(`| \`${spec.env}\` | \`${flagOfSpec(spec)}\` |`), spec.env);
    }
    const config = renderConfigTable();
    for (const key of keysOfGroups('registrar')) assert.ok(config.includes(`| \`${key}\` |`), key);
  });

  it('fails on a stale region and refuses a document without its markers', () => {
    const [doc] = SETTINGS_DOCS;
    assert.ok(doc);
    const stale = readFileSync(doc.path, 'utf8').replace('| `DDS_BASE_URL` |', '| `DDS_BASE` |');
    assert.notEqual(applyRegions(stale, doc.regions), stale);
    assert.throws(() => applyRegions('no markers here', doc.regions), /missing the markers/);
  });

  it('--check exits 0 on the committed docs', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'gen-settings.ts'), '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
  });
});

describe('the settings table is the one home of the variable names', () => {
  const sources = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : /\.c?ts$/.test(e.name) ? [path.join(dir, e.name)] : []));
  const texts = sources(path.join(ROOT, 'src')).map((file) => ({ file: path.relative(ROOT, file), text: readFileSync(file, 'utf8') }));

  it('names each environment variable in exactly one file under src/ (src/settings/table.ts)', () => {
    for (const key of SETTING_KEYS) {
      const { env } = specOf(key);
      const word = new RegExp(`\\b${env}\\b`);
      const files = texts.filter((t) => word.test(t.text)).map((t) => t.file);
      assert.deepEqual(files, ['src/settings/table.ts'], `${env} is named in ${files.join(', ')}`);
    }
  });
});
