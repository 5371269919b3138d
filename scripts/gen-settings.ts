/**
 * Generates the configuration tables of docs/operating.md and
 * docs/embedding.md from the settings table (src/settings/table.ts), between
 * marker comments, so that the docs cannot drift from the code:
 *
 *     <!-- BEGIN GENERATED settings:<name> (scripts/gen-settings.ts: do not edit) -->
 *     …
 *     <!-- END GENERATED settings:<name> -->
 *
 * ```sh
 * node --import tsx scripts/gen-settings.ts           # (re)write the docs
 * node --import tsx scripts/gen-settings.ts --check   # exit 1 if one is out of date
 * ```
 *
 * Importing this module runs nothing: it exports the pure renderers.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  credentialOf,
  CREDENTIALS_DIRECTORY_ENV,
  defaultOf,
  fileEnvOf,
  isDerived,
  flagOf,
  flagOfSpec,
  keysOfGroups,
  showDefault,
  specOf,
  type SettingGroup,
  type SettingSpec,
} from '../src/settings/table.js';

const code = (s: string): string => `\`${s}\``;
const cell = (s: string): string => s.replace(/\|/g, '\\|');

function meaning(spec: SettingSpec): string {
  return cell(spec.details ? `${spec.help}. ${spec.details}` : spec.help);
}

/** The default, without its unit (the unit has its column). */
function defaultCell(spec: SettingSpec, command?: 'run'): string {
  const value = defaultOf(spec, command);
  if (value === undefined) return spec.required ? 'required' : spec.requiredWhen !== undefined ? cell(spec.requiredWhen.text) : '—';
  return isDerived(value) ? cell(value.text) : code(spec.kind.show(value));
}

function commandsCell(spec: SettingSpec): string {
  return spec.commands
    .map((c) => {
      const own = spec.commandDefaults?.[c];
      return own === undefined || c === 'run' ? c : `${c} (${showDefault(spec, c) ?? ''})`;
    })
    .join(', ');
}

/** The command's settings of `groups`: variable, flag, meaning, default, commands. */
export function renderCommandTable(...groups: SettingGroup[]): string {
  const rows = keysOfGroups(...groups).map((key) => {
    const spec = specOf(key);
    return `| ${code(spec.env)} | ${code(flagOfSpec(spec))} | ${meaning(spec)} | ${spec.unit ?? ''} | ${defaultCell(spec, 'run')} | ${commandsCell(spec)} |`;
  });
  return [
    '| variable | flag | meaning | unit | default | commands (their own default) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** Where each secret may come from. */
export function renderSecretsTable(): string {
  const rows = keysOfGroups('registrar', 'server', 'logging', 'simulator')
    .map(specOf)
    .filter((spec) => spec.fromFile)
    .map((spec) => `| ${code(spec.env)} | ${code(fileEnvOf(spec))}, ${code(flagOf(fileEnvOf(spec)))} | ${code(credentialOf(spec))} (${code(`$${CREDENTIALS_DIRECTORY_ENV}/${credentialOf(spec)}`)}) |`);
  return ['| secret | file (variable, flag) | systemd credential |', '| --- | --- | --- |', ...rows].join('\n');
}

/** `RegistrarConfig`, as library users give it. */
export function renderConfigTable(): string {
  const rows = keysOfGroups('registrar').map((key) => {
    const spec = specOf(key);
    return `| ${code(key)} | ${meaning(spec)} | ${spec.unit ?? ''} | ${defaultCell(spec)} |`;
  });
  return ['| key | meaning | unit | default |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** A generated region of a document. */
export interface GeneratedRegion {
  name: string;
  render(): string;
}

/** The documents and their regions. */
export const SETTINGS_DOCS: ReadonlyArray<{ path: string; regions: readonly GeneratedRegion[] }> = [
  {
    path: fileURLToPath(new URL('../docs/operating.md', import.meta.url)),
    regions: [
      { name: 'daemon', render: () => renderCommandTable('registrar', 'server', 'logging') },
      { name: 'secrets', render: renderSecretsTable },
      { name: 'simulator', render: () => renderCommandTable('simulator') },
    ],
  },
  {
    path: fileURLToPath(new URL('../docs/embedding.md', import.meta.url)),
    regions: [{ name: 'config', render: renderConfigTable }],
  },
];

const begin = (name: string): string => `<!-- BEGIN GENERATED settings:${name} (scripts/gen-settings.ts: do not edit) -->`;
const end = (name: string): string => `<!-- END GENERATED settings:${name} -->`;

/** `text` with each region's content replaced by what it renders. @throws when a region's markers are missing. */
export function applyRegions(text: string, regions: readonly GeneratedRegion[]): string {
  let out = text;
  for (const region of regions) {
    const from = out.indexOf(begin(region.name));
    const to = out.indexOf(end(region.name));
    if (from === -1 || to < from) throw new Error(`missing the markers of settings:${region.name}`);
    out = `${out.slice(0, from)}${begin(region.name)}\n${region.render()}\n${out.slice(to)}`;
  }
  return out;
}

function main(argv: readonly string[]): number {
  const check = argv.includes('--check');
  if (argv.some((a) => a !== '--check')) {
    console.error('usage: node --import tsx scripts/gen-settings.ts [--check]');
    return 2;
  }
  let stale = 0;
  for (const doc of SETTINGS_DOCS) {
    const current = readFileSync(doc.path, 'utf8');
    const wanted = applyRegions(current, doc.regions);
    if (current === wanted) {
      if (!check) console.log(`unchanged ${doc.path}`);
    } else if (check) {
      console.error(`${doc.path} is out of date: run \`npm run docs:settings\` and commit it.`);
      stale += 1;
    } else {
      writeFileSync(doc.path, wanted);
      console.log(`wrote ${doc.path}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedPath)).href) {
  process.exitCode = main(process.argv.slice(2));
}
