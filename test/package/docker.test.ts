/**
 * The container recipe of docs/operating.md ("In a container"), as far as it
 * can be checked without Docker: the repository's `.dockerignore` (read with
 * Docker's own matching rules) keeps out what the image must not hold and
 * keeps in what its build reads; the docs show that very file; the
 * Dockerfile runs as a user, installs before it copies the sources, and
 * starts the launcher in exec form.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import dockerignoreModule from '@balena/dockerignore';
import { REPO_ROOT } from '../support/index.js';

// Its types declare `export default` for what is CommonJS's `module.exports`: the default import is the factory itself.
const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;

const DOCKERIGNORE = fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8');
const OPERATING = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'operating.md'), 'utf8');
const CONTAINER = OPERATING.slice(OPERATING.indexOf('## In a container'), OPERATING.indexOf('## Under systemd'));

/** The content of the first fenced block of `lang` in `text`. */
function fenced(text: string, lang: string): string {
  const m = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(text);
  assert.ok(m?.[1] !== undefined, `docs/operating.md, "In a container": no \`\`\`${lang} block`);
  return m[1];
}

describe('the container recipe', () => {
  const ignored = dockerignore().add(DOCKERIGNORE);

  it('.dockerignore keeps node_modules, dist, .git, data and logs out of the build context', () => {
    for (const p of ['node_modules/express/index.js', 'dist/src/index.js', '.git/HEAD', 'data/registration_state.json', 'npm-debug.log', '.env', 'test/unit/x.test.ts']) {
      assert.ok(ignored.ignores(p), `${p} would be sent to the image`);
    }
  });

  it('.dockerignore keeps in everything `npm ci` and `npm run build` read', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const build = pkg.scripts['build'] ?? '';
    const scripts = [...build.matchAll(/scripts\/[\w.-]+/g)].map((m) => m[0]);
    assert.ok(scripts.length > 0, build);
    const tsconfig = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { extends: string; include: string[] };
    const sources = tsconfig.include.flatMap((dir) =>
      fs.readdirSync(path.join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' }).map((f) => path.posix.join(dir, f.split(path.sep).join('/'))),
    );
    const needed = ['package.json', 'package-lock.json', 'tsconfig.build.json', tsconfig.extends.replace(/^\.\//, ''), ...scripts, ...sources];
    for (const p of needed) assert.ok(!ignored.ignores(p), `${p} is needed by the build but .dockerignore leaves it out`);
  });

  it('the docs show the repository\'s .dockerignore, and a Dockerfile that runs as a user, installs first and execs the launcher', () => {
    assert.equal(fenced(CONTAINER, 'gitignore'), DOCKERIGNORE, 'docs/operating.md shows .dockerignore as committed');
    const lines = fenced(CONTAINER, 'dockerfile')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const at = (re: RegExp): number => {
      const i = lines.findIndex((l) => re.test(l));
      assert.ok(i >= 0, `the Dockerfile has no line matching ${re}`);
      return i;
    };
    const user = at(/^USER node$/);
    const copyManifests = at(/^COPY (--chown=\S+ )?package\.json package-lock\.json \.\/$/);
    const install = at(/^RUN npm ci\b/);
    const copyAll = at(/^COPY (--chown=\S+ )?\. \.$/);
    const build = at(/^RUN npm run build\b/);
    assert.ok(user < copyManifests && copyManifests < install && install < copyAll && copyAll < build, lines.join('\n'));
    assert.equal(lines.filter((l) => l.startsWith('COPY ')).length, 2, 'two COPYs: the manifests, then the rest');
    const cmd = lines.find((l) => l.startsWith('CMD '));
    assert.ok(cmd !== undefined);
    const argv = JSON.parse(cmd.slice(4)) as string[];
    assert.deepEqual(argv, ['node', 'dist/src/cli/launch.cjs', 'run'], 'exec form, the launcher itself');
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(`./${argv[1]}`, Object.values(pkg.bin)[0], 'the CMD runs the package\'s bin');
  });
});
