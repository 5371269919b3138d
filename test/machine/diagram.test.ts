/**
 * The generated statechart document: up to date, complete, and its generator
 * usable from the command line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AnyStateNode } from 'xstate';
import { registrarMachine } from '../../machines/registrar.js';
import {
  renderMermaid,
  mermaidLabel,
  renderStatechartMarkdown,
  shortEventLabel,
  STATECHART_DOC_PATH,
} from '../../scripts/gen-diagram.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = path.join(ROOT, 'scripts', 'gen-diagram.ts');

function allNodes(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap(allNodes)];
}

function runScript(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('docs/statechart.md', () => {
  it('is what scripts/gen-diagram.ts generates (run `node --import tsx scripts/gen-diagram.ts`)', () => {
    const onDisk = readFileSync(STATECHART_DOC_PATH, 'utf8');
    assert.ok(
      onDisk === renderStatechartMarkdown(),
      'docs/statechart.md is out of date: run `node --import tsx scripts/gen-diagram.ts` and commit it',
    );
  });
});

describe('renderMermaid', () => {
  const mermaid = renderMermaid();
  const lines = mermaid.split('\n').map((l) => l.trim());

  it('is a stateDiagram-v2 with an initial state and the final states', () => {
    assert.equal(lines[0], 'stateDiagram-v2');
    assert.ok(lines.includes('[*] --> starting'));
    assert.ok(lines.includes('stopped --> [*]'));
    assert.ok(lines.includes('failed --> [*]'));
  });

  it('draws every state node, composites as blocks and parallel regions split by --', () => {
    for (const node of allNodes(registrarMachine.root).slice(1)) {
      assert.ok(new RegExp(`\\b${node.key}\\b`).test(mermaid), `state ${node.id} missing`);
      if (Object.keys(node.states).length > 0) assert.ok(lines.includes(`state ${node.key} {`), node.id);
    }
    const registered = lines.indexOf('state registered {');
    const health = lines.indexOf('state health {');
    const separator = lines.indexOf('--', health);
    const callbackWindow = lines.indexOf('state callbackWindow {');
    assert.ok(registered >= 0 && registered < health && health < separator && separator < callbackWindow);
  });

  it('gives states that share a key distinct ids', () => {
    assert.ok(lines.includes('state "checkingSiblings" as acquiringLock_checkingSiblings'));
    assert.ok(lines.includes('state "checkingSiblings" as health_checkingSiblings'));
    assert.ok(lines.includes('state "deciding" as backoff_deciding'));
    assert.ok(lines.includes('state "deciding" as callbackWindow_deciding'));
  });

  it('draws one edge per transition target, with guards', () => {
    let expected = 0;
    for (const node of allNodes(registrarMachine.root).slice(1)) {
      for (const list of [...node.transitions.values(), node.always ?? []]) {
        for (const t of list) expected += Math.max(1, t.target?.length ?? 0);
      }
    }
    const edges = lines.filter((l) => / --> /.test(l) && !l.startsWith('[*]') && !l.endsWith('[*]'));
    assert.equal(edges.length, expected);
    assert.ok(lines.includes('trying --> waitingForLock: done∶ acquireLock [lockBusy]'));
    assert.ok(lines.includes('waitingForLock --> trying: after interval'));
    assert.ok(lines.includes('backoff_deciding --> cooldown: always [maxRetryReached]'));
    assert.ok(lines.includes('starting --> failed: error∶ checkCredentials'));
    assert.ok(lines.includes('acquiringLock --> registered: done∶ readSharedState [liveSiblingRegistered] (from checkingSiblings)'));
  });

  it("keeps every line within what Mermaid's state-diagram lexer takes", () => {
    const id = String.raw`[^:\s{}"-]+`;
    const forms = [
      // A transition: one `:` before the label, none (and no `;`) in it.
      new RegExp(String.raw`^(\[\*\]|${id}) --> (\[\*\]|${id})(: [^:;]+)?$`),
      new RegExp(String.raw`^state ${id} \{$`),
      new RegExp(String.raw`^state "[^"]+" as ${id}$`),
      new RegExp(String.raw`^${id}$`),
      /^\}$/,
      /^--$/,
      new RegExp(String.raw`^note right of ${id}$`),
    ];
    let inNote = false;
    for (const line of lines.slice(1)) {
      if (inNote) {
        inNote = line !== 'end note';
        continue;
      }
      assert.ok(forms.some((f) => f.test(line)), `not a line Mermaid takes: ${line}`);
      inNote = line.startsWith('note ');
    }
    assert.equal(inNote, false, 'an unterminated note');
  });

  it('lists the transitions defined on the root in a note', () => {
    const note = lines.slice(lines.indexOf('note right of starting'), lines.indexOf('end note') + 1);
    assert.ok(note.length > 2);
    assert.ok(note.includes('STOP → stopping'));
    assert.ok(note.includes('SECRET_RECEIVED [callbackPolicyAlways]'));
  });
});

describe('shortEventLabel', () => {
  it('shortens XState event types', () => {
    assert.equal(shortEventLabel('xstate.done.actor.acquireLock'), 'done: acquireLock');
    assert.equal(shortEventLabel('xstate.error.actor.shutdown'), 'error: shutdown');
    assert.equal(shortEventLabel('xstate.after.interval.registrar.acquiringLock.waitingForLock'), 'after interval');
    assert.equal(shortEventLabel(''), 'always');
    assert.equal(shortEventLabel('HEALTHCHECK'), 'HEALTHCHECK');
  });

  it('is made Mermaid-safe by mermaidLabel', () => {
    assert.equal(mermaidLabel('done: a; b'), 'done\u2236 a, b');
  });
});

describe('renderStatechartMarkdown', () => {
  const md = renderStatechartMarkdown();

  it('has the introduction, the diagram and the tables', () => {
    assert.ok(md.startsWith('# The registrar statechart\n'));
    assert.ok(md.includes(`\`\`\`mermaid\n${renderMermaid()}\n\`\`\``));
    for (const delay of Object.keys(registrarMachine.implementations.delays)) {
      assert.match(md, new RegExp(`^\\| \`${delay}\` \\|`, 'm'), `delay ${delay}`);
    }
    for (const actor of Object.keys(registrarMachine.implementations.actors)) {
      assert.match(md, new RegExp(`^\\| \`${actor}\` \\|`, 'm'), `actor ${actor}`);
    }
    assert.match(md, /^\| `readSharedState` \| `registered\.health\.checkingSiblings` \|/m);
    assert.match(md, /^\| `attempt` \| `starting`, `acquiringLock`, `registering`, `healthCheckStale` \|/m, 'the tags table');
  });
});

describe('scripts/gen-diagram.ts on the command line', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gen-diagram-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--check exits 0 when the file is current, 1 when not; without it, writes the file', () => {
    const file = path.join(dir, 'statechart.md');
    writeFileSync(file, '# stale\n');
    const stale = runScript(['--check', '--file', file]);
    assert.equal(stale.status, 1, stale.stderr);
    assert.match(stale.stderr, /out of date/);
    assert.equal(readFileSync(file, 'utf8'), '# stale\n', '--check does not write');

    const write = runScript(['--file', file]);
    assert.equal(write.status, 0, write.stderr);
    assert.equal(readFileSync(file, 'utf8'), renderStatechartMarkdown());

    const current = runScript(['--check', '--file', file]);
    assert.equal(current.status, 0, current.stderr);
  });

  it('rejects unknown arguments', () => {
    const r = runScript(['--bogus']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /usage/);
  });

  it('runs nothing when imported', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', `await import(${JSON.stringify(SCRIPT)});`],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '');
  });
});
