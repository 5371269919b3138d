/**
 * The package as users install it: `npm pack` once, `npm install` of the
 * tarball into a fresh `npm init -y` project (CommonJS, as npm now makes
 * them) holding an ES-module app, a CommonJS app and a TypeScript app, and
 * the README's embedding example run in each against the DDS simulator.
 *
 * Also what ships: the packed size (and the figure the docs give), every
 * source map's sources, and `.dockerignore`. Dependencies come from npm's
 * cache (`--prefer-offline`: `npm ci` filled it), else from the registry.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateSecretKey } from '../../src/crypto.js';
import { DdsSimulator, type DdsSimulatorEvent } from '../../src/sim/dds-simulator.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from '../../src/version.js';
import { assertBuilt, assertNoSecrets, CleanupStack, freePort, REPO_ROOT, spawnChild, tempDir, waitUntil } from '../support/index.js';

const run = promisify(execFile);

/** The most the tarball may weigh (issue 13: it was 1.8 MB). */
const MAX_PACKED_BYTES = 1_500_000;
/** How far the packed size the docs give may be from the measured one. */
const DOCUMENTED_SIZE_TOLERANCE = 0.25;
const TSC = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const README = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/** npm with an environment of its own: not the `npm test` lifecycle's (its package, its prefix). */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_(package|lifecycle|config_local_prefix)|INIT_CWD$)/i.test(k)));
}

async function npm(cwd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('npm', args, { cwd, env: npmEnv(), maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stderr ?? ''}`);
  }
}

/** The version of a dependency as installed here: the one in npm's cache. */
function installedVersion(name: string): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** A fenced block of the README, found by the HTML comment just above it (`<!-- example: <name> … -->`). */
function readmeExample(name: string): string {
  const marker = `<!-- example: ${name}`;
  const at = README.indexOf(marker);
  assert.ok(at >= 0, `README.md has no block marked ${marker}`);
  const m = /-->\s*\n\s*```[a-z]*\n([\s\S]*?)\n\s*```/.exec(README.slice(at));
  assert.ok(m?.[1] !== undefined, `README.md: no fenced block after ${marker}`);
  // An indented block (in a list item) loses its indentation.
  const lines = m[1].split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0));
  return `${lines.map((l) => l.slice(indent)).join('\n')}\n`;
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** The package's subpaths as its exports map lists them (`.`, `./machines/registrar`, …), JSON ones left out. */
function codeSubpaths(pkgDir: string): string[] {
  const { exports } = readJson(path.join(pkgDir, 'package.json')) as { exports: Record<string, unknown> };
  return Object.keys(exports).filter((k) => !k.endsWith('.json'));
}

function specifier(subpath: string): string {
  return subpath === '.' ? PACKAGE_NAME : `${PACKAGE_NAME}/${subpath.slice(2)}`;
}

describe('the package as installed', { timeout: 900_000 }, () => {
  const suite = new CleanupStack();
  let pack: PackResult;
  let app: string;
  let pkgDir: string;

  before(async () => {
    assertBuilt();
    const tmp = tempDir(suite, 'pnr-package-');
    // --ignore-scripts: `prepare` would rebuild dist/ under the other suites' feet (it is built: assertBuilt).
    const [packed] = JSON.parse(await npm(REPO_ROOT, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp])) as PackResult[];
    assert.ok(packed !== undefined);
    pack = packed;
    app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    await npm(app, ['init', '-y']);
    assert.notEqual((readJson(path.join(app, 'package.json')) as { type?: string }).type, 'module', 'npm init -y: not an ES-module project');
    await npm(app, [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      path.join(tmp, pack.filename),
      `express@${installedVersion('express')}`,
      `@types/node@${installedVersion('@types/node')}`,
      // The optional peer of `posemesh-node-registration/testing` (docs/testing.md).
      `@xstate/graph@${installedVersion('@xstate/graph')}`,
    ]);
    pkgDir = path.join(app, 'node_modules', PACKAGE_NAME);
  });
  after(() => suite.run());

  describe('what ships', () => {
    it(`weighs at most ${MAX_PACKED_BYTES / 1e6} MB packed, and the docs say how much`, () => {
      assert.ok(pack.size <= MAX_PACKED_BYTES, `packed ${pack.size} bytes`);
      const docs = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'embedding.md'), 'utf8');
      const m = /about ([\d.]+) MB packed/.exec(docs);
      assert.ok(m?.[1] !== undefined, 'docs/embedding.md gives the packed size ("about N MB packed")');
      const documented = Number(m[1]) * 1e6;
      const measured = (pack.size / 1e6).toFixed(1);
      assert.ok(
        Math.abs(documented - pack.size) <= DOCUMENTED_SIZE_TOLERANCE * pack.size,
        `docs/embedding.md says about ${m[1]} MB packed; npm pack measures ${measured} MB (unpacked ${(pack.unpackedSize / 1e6).toFixed(1)} MB)`,
    );
    });

    it('every source map and declaration map names sources that ship, and every map a file points to ships', () => {
      const shipped = new Set(pack.files.map((f) => f.path));
      let maps = 0;
      for (const file of shipped) {
        if (/\.(c|m)?js$|\.d\.(c|m)?ts$/.test(file)) {
          const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(fs.readFileSync(path.join(pkgDir, file), 'utf8'))?.[1];
          if (url !== undefined) {
            const target = path.posix.join(path.posix.dirname(file), url);
            assert.ok(shipped.has(target), `${file} points to ${url}, which does not ship`);
          }
        }
        if (!file.endsWith('.map')) continue;
        maps += 1;
        const map = readJson(path.join(pkgDir, file)) as { sources: string[]; sourceRoot?: string };
        for (const source of map.sources) {
          const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), map.sourceRoot ?? '', source));
          assert.ok(!target.startsWith('..') && shipped.has(target), `${file} names ${source}, which does not ship`);
        }
      }
      assert.ok(maps > 0, 'the library ships its maps');
      assert.ok(shipped.has('dist/src/cli/bundle.cjs') && !shipped.has('dist/src/cli/bundle.cjs.map'), 'the CLI bundle ships without a map');
    });
  });

  describe('loading it', () => {
    it('an ES module imports every subpath; CommonJS require()s the same modules', async () => {
      const subpaths = codeSubpaths(pkgDir);
      assert.ok(subpaths.includes('.') && subpaths.includes('./machines/registrar'), subpaths.join(', '));
      const specs = JSON.stringify(subpaths.map(specifier));
      write(path.join(app, 'esm', 'package.json'), '{ "type": "module" }\n');
      write(
        path.join(app, 'esm', 'load.js'),
        `for (const s of ${specs}) console.log(s, Object.keys(await import(s)).length);\n`,
      );
      write(
        path.join(app, 'cjs', 'load.js'),
        [
          `const specs = ${specs};`,
          'Promise.all(specs.map((s) => import(s))).then((imported) => {',
          '  specs.forEach((s, i) => {',
          '    const required = require(s);',
          "    if (required !== imported[i]) throw new Error(`${s}: require() and import() gave different modules`);",
          '    console.log(s, Object.keys(required).length);',
          '  });',
          `  console.log('version', require('${PACKAGE_NAME}/package.json').version);`,
          '});',
          '',
        ].join('\n'),
      );
      for (const kind of ['esm', 'cjs']) {
        const { stdout, stderr } = await run(process.execPath, [path.join(app, kind, 'load.js')], { cwd: app });
        // Node 20.19 may still call require(esm) experimental; anything else on stderr is a problem.
        const other = stderr.split('\n').filter((l) => l.trim() !== '' && !/ExperimentalWarning|--trace-warnings/.test(l));
        assert.deepEqual(other, [], `${kind}: stderr`);
        for (const s of JSON.parse(specs) as string[]) assert.match(stdout, new RegExp(`^${s} [1-9]\\d*$`, 'm'), `${kind}: ${s}\n${stdout}`);
        if (kind === 'cjs') assert.match(stdout, new RegExp(`^version ${PACKAGE_VERSION.replace(/\./g, '\\.')}$`, 'm'));
      }
    });

    it('its types resolve with node16, nodenext and bundler, from ES modules and from CommonJS (strict)', async () => {
      const ts = path.join(app, 'ts');
      const example = readmeExample('app.mjs');
      const imports = codeSubpaths(pkgDir).map((s, i) => `import * as m${i} from '${specifier(s)}';\nexport type M${i} = typeof m${i};\n`);
      for (const ext of ['mts', 'cts']) {
        write(path.join(ts, `app.${ext}`), example);
        write(path.join(ts, `subpaths.${ext}`), imports.join(''));
      }
      // node16 is the strictest about CommonJS loading ES modules: it also checks the libraries'
      // declarations (ours, and what they import), ~20 s of CPU; the others check the apps.
      // One at a time: the cores are shared.
      const modes = [
        { resolution: 'node16', module: 'node16', skipLibCheck: false },
        { resolution: 'nodenext', module: 'nodenext', skipLibCheck: true },
        { resolution: 'bundler', module: 'preserve', skipLibCheck: true },
      ] as const;
      for (const { resolution, module, skipLibCheck } of modes) {
        const config = path.join(ts, `tsconfig.${resolution}.json`);
        const compilerOptions = {
          strict: true,
          skipLibCheck,
          target: 'es2022',
          module,
          moduleResolution: resolution,
          esModuleInterop: true,
          types: ['node'],
          ...(resolution === 'nodenext' ? { outDir: 'out' } : { noEmit: true }),
        };
        write(config, JSON.stringify({ compilerOptions, files: ['app.mts', 'app.cts', 'subpaths.mts', 'subpaths.cts'] }));
        try {
          await run(process.execPath, [TSC, '-p', config], { cwd: ts });
        } catch (error) {
          assert.fail(`tsc (${resolution}): ${(error as { stdout?: string }).stdout ?? String(error)}`);
        }
      }
      assert.ok(fs.existsSync(path.join(ts, 'out', 'app.mjs')) && fs.existsSync(path.join(ts, 'out', 'app.cjs')));
    });
  });

  describe("the README's embedding example", () => {
    let sim: DdsSimulator;
    const events: DdsSimulatorEvent[] = [];
    before(async () => {
      sim = new DdsSimulator({ probeIntervalMs: 200 });
      sim.on((e) => events.push(e));
      await sim.start();
      suite.after(() => sim.stop());
    });

    /** Run the example at `script` (cwd: a fresh directory) until registered, called back and probed; stop it with SIGTERM. */
    async function runExample(name: string, script: string): Promise<void> {
      const cwd = tempDir(suite, `pnr-example-${name}-`);
      const port = await freePort();
      const nodeUrl = `http://127.0.0.1:${port}`;
      const privhex = generateSecretKey().exposeHex();
      const regSecret = `reg-${name}-${privhex.slice(0, 16)}`;
      const env = {
        PATH: process.env['PATH'],
        HOME: process.env['HOME'],
        PORT: String(port),
        DDS_BASE_URL: sim.url,
        REG_SECRET: regSecret,
        SECP256K1_PRIVHEX: privhex,
      };
      const child = spawnChild(suite, { script, cwd, env, name, waitTimeoutMs: 60_000 });
      await child.waitForEvent('registration.success');
      await child.waitForEvent('registration.callback');
      await waitUntil(
        () => events.some((e) => e.type === 'probe.sent' && e.nodeUrl === nodeUrl && e.status === 200),
        `${name}: a health probe answered`,
        60_000,
      );
      assert.ok(child.lines.some((l) => /^registrar: \{"registered":/.test(l)), `${name}: it prints its state\n${child.stdout()}`);
      const result = await child.stop('SIGTERM');
      assert.equal(result.code, 0, `${name}: a graceful stop\n${result.stderr}`);
      assert.ok(child.lines.includes('registrar: "stopped"'), `${name}: it ends in stopped\n${result.stdout}`);
      const state = readJson(path.join(cwd, 'data', 'registration_state.json')) as { status: string };
      assert.equal(state.status, 'disconnected');
      assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, [regSecret, privhex]);
    }

    it('runs as written: an ES module, CommonJS (its require lines), and TypeScript compiled both ways', async () => {
      const example = readmeExample('app.mjs');
      const body = example
        .split('\n')
        .filter((l) => !/^import /.test(l))
        .join('\n');
      write(path.join(app, 'esm', 'app.js'), example);
      write(path.join(app, 'cjs', 'app.js'), readmeExample('app.cjs header') + body);
      const ts = path.join(app, 'ts', 'out');
      assert.ok(fs.existsSync(path.join(ts, 'app.mjs')), 'the TypeScript test compiled the example');
      await Promise.all([
        runExample('esm', path.join(app, 'esm', 'app.js')),
        runExample('cjs', path.join(app, 'cjs', 'app.js')),
        runExample('ts-esm', path.join(ts, 'app.mjs')),
        runExample('ts-cjs', path.join(ts, 'app.cjs')),
      ]);
    });
  });

  describe('the installed command', () => {
    it('runs from node_modules/.bin', async () => {
      const bin = path.join(app, 'node_modules', '.bin', PACKAGE_NAME);
      const { stdout } = await run(bin, ['--version'], { cwd: app });
      assert.equal(stdout.trim(), PACKAGE_VERSION);
    });
  });
});
