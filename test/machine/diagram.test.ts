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
  compoundStates,
  renderDiagrams,
  renderMermaid,
  mermaidLabel,
  mergeDoneAndError,
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

/** Every line form the diagrams use, within what Mermaid's state-diagram lexer takes. */
function assertMermaidLines(name: string, mermaid: string): void {
  const id = String.raw`[^:\s{}"-]+`;
  const forms = [
    // A transition: one `:` before the label, none (and no `;`) in it.
    new RegExp(String.raw`^(\[\*\]|${id}) --> (\[\*\]|${id})(: [^:;]+)?$`),
    new RegExp(String.raw`^state ${id} \{$`),
    new RegExp(String.raw`^state "[^"]+" as ${id}( \{)?$`),
    // A line inside a box (a state description).
    new RegExp(String.raw`^${id} : [^:;]+$`),
    new RegExp(String.raw`^${id}$`),
    /^\}$/,
    /^direction LR$/,
    new RegExp(String.raw`^classDef ${id} [^;\s]+( [^;\s]+)*$`),
    new RegExp(String.raw`^class ${id}(, ${id})* ${id}$`),
  ];
  const all = mermaid.split('\n').map((l) => l.trim());
  // A diagram may open with Mermaid's init directive (closer spacing).
  const lines = /^%%\{init: \{"state":\{[^{}]+\}\}\}%%$/.test(all[0] ?? '') ? all.slice(1) : all;
  assert.equal(lines[0], 'stateDiagram-v2', name);
  for (const line of lines.slice(1)) assert.ok(forms.some((f) => f.test(line)), `${name}: not a line Mermaid takes: ${line}`);
}

describe('renderMermaid: the overview', () => {
  const mermaid = renderMermaid();
  const lines = mermaid.split('\n').map((l) => l.trim());

  it('draws the top-level states only, from the initial one, compounds thick-bordered', () => {
    assert.equal(lines[0], 'stateDiagram-v2');
    assert.ok(lines.includes('[*] --> starting'));
    for (const node of Object.values(registrarMachine.root.states)) {
      assert.ok(lines.some((l) => l === node.key || l === `state "${node.key}" as ${node.key}`), `state ${node.key} declared`);
    }
    assert.ok(!lines.some((l) => l.endsWith('{')), 'nothing expanded');
    assert.ok(!/\btrying\b|\bwaitingForLock\b|\bfresh\b|\bcooldown\b/.test(mermaid), 'no inner state');
    assert.deepEqual(compoundStates().map((n) => n.key), ['acquiringLock', 'registered', 'backoff']);
    assert.ok(lines.includes('class acquiringLock, registered, backoff compound'));
  });

  it('merges the transitions between two states into one arrow, one line per trigger', () => {
    assert.ok(lines.includes('starting --> failed: done∶ checkCredentials [else]<br>error∶ checkCredentials'));
    assert.ok(lines.includes('backoff --> acquiringLock_again: REGISTER_NOW<br>after retryDelay<br>after cooldownDelay'));
    assert.ok(lines.includes('healthCheckStale --> acquiringLock_again: after oneTurn'));
    const arrows = lines.filter((l) => / --> /.test(l)).map((l) => l.split(':')[0]);
    assert.equal(new Set(arrows).size, arrows.length, 'one arrow per pair');
  });

  it('writes transitions that stay inside their box, marks final states, and has a box for every state', () => {
    assert.ok(lines.includes('registering : ↺ SECRET_RECEIVED [first]'));
    assert.ok(lines.includes('registering : ↺ SECRET_RECEIVED [repeat]'));
    assert.ok(lines.includes('stopping : ↺ STOP'));
    assert.ok(lines.includes('stopped : (final)'));
    assert.ok(lines.includes('failed : (final)'));
    assert.ok(!lines.some((l) => /^(\S+) --> \1:/.test(l)), 'no self-loop arrow');
    assert.ok(lines.includes('state "any state" as any_state'));
    assert.ok(lines.includes('any_state --> stopping: STOP'));
    assert.ok(lines.includes('any_state : ↺ HEALTHCHECK'));
    assert.ok(lines.includes('any_state : ↺ SECRET_RECEIVED [callbackPolicyAlways]'));
  });

  it('ends the arrows back to acquiringLock at a dashed copy of it (drawn back up, they made it 1,400 px wide)', () => {
    assert.ok(lines.includes('state "acquiringLock" as acquiringLock_again'));
    assert.ok(lines.includes('class acquiringLock_again elsewhere'));
    assert.ok(lines.includes('starting --> acquiringLock: done∶ checkCredentials [credentialsValid]'), 'the way in goes to the state itself');
    for (const from of ['registered', 'rearming', 'healthCheckStale', 'backoff']) {
      assert.ok(lines.some((l) => l.startsWith(`${from} --> acquiringLock_again: `)), from);
      assert.ok(!lines.some((l) => l.startsWith(`${from} --> acquiringLock: `)), from);
    }
  });

  it("keeps every line within what Mermaid's state-diagram lexer takes", () => assertMermaidLines('overview', mermaid));
});

describe('renderMermaid: one diagram per compound state', () => {
  const diagrams = renderDiagrams();

  const of = (title: string): string[] => diagrams.find((d) => d.title === title)?.mermaid.split('\n').map((l) => l.trim()) ?? [];

  it('is the overview, then each top-level compound state in the machine’s order, the session region after registered', () => {
    assert.deepEqual(diagrams.map((d) => d.title), ['Overview', 'acquiringLock', 'registered', 'registered.session', 'backoff']);
    assert.equal(diagrams[0]?.mermaid, renderMermaid());
    assert.throws(() => renderMermaid(registrarMachine, registrarMachine.root.states['starting'] ?? null), /not a top-level compound state/);
  });

  it('draws everything inside the state, and only the states its transitions leave for, dashed', () => {
    for (const d of diagrams.slice(1)) {
      const focus = d.focus;
      assert.ok(focus);
      // What is inside the session region is in its own diagram, not registered's.
      const inner = allNodes(focus).slice(1).filter((n) => !(focus.key === 'registered' && n.path.includes('session') && n.key !== 'session'));
      for (const node of inner) assert.ok(new RegExp(`\\b${node.key}\\b`).test(d.mermaid), `${d.title}: ${node.id}`);
      assertMermaidLines(d.title, d.mermaid);
    }
    const lock = diagrams[1]?.mermaid.split('\n').map((l) => l.trim()) ?? [];
    assert.ok(lock.includes('state acquiringLock {') && lock.includes('direction LR'));
    assert.ok(lock.includes('trying --> waitingForLock: done∶ acquireLock [lockBusy]'));
    assert.ok(lock.includes('waitingForLock --> trying: after interval'));
    assert.ok(lock.includes('acquiringLock --> registered: done∶ readSharedState [liveSiblingRegistered]<br>(from checkingSiblings)'));
    assert.ok(lock.includes('class registering, registered elsewhere'));
    assert.ok(!lock.some((l) => /^(starting|backoff|stopping)\b/.test(l)), 'the ways in are in the overview');
  });

  it('puts parallel regions side by side in one titled box, and gives states that share a key distinct ids', () => {
    const registered = diagrams[2]?.mermaid.split('\n').map((l) => l.trim()) ?? [];
    const box = registered.indexOf('state "registered (parallel regions)" as registered {');
    const health = registered.indexOf('state health {');
    const callbackWindow = registered.indexOf('state callbackWindow {');
    assert.ok(box >= 0 && box < health && health < callbackWindow, 'the regions inside the parallel state');
    assert.ok(!registered.includes('--'), 'no `--` (it adds a second box around each region)');
    assert.ok(registered.includes('state "checkingSiblings" as health_checkingSiblings'));
    assert.ok(registered.includes('state "deciding" as callbackWindow_deciding'));
    assert.ok(registered.includes('fresh : ↻ HEALTHCHECK'));
    assert.ok(registered.includes('open --> closed: SECRET_RECEIVED<br>after callbackWindow'));
    assert.ok(registered.includes('closed : ↺ SECRET_RECEIVED [repeat]'));
    const backoff = of('backoff');
    assert.ok(backoff.includes('state "deciding" as backoff_deciding'));
    assert.ok(backoff.includes('backoff_deciding --> cooldown: always [maxRetryReached]<br>always [else]'));
  });

  it('draws the session region as one thick box in registered, and in a diagram of its own', () => {
    const registered = of('registered');
    assert.ok(registered.includes('session'), 'a plain box');
    assert.ok(!registered.includes('state session {'), 'not expanded');
    assert.ok(!registered.some((l) => /\b(signingIn|signInFailed)\b/.test(l)), 'nothing of its inside');
    assert.ok(registered.includes('class session compound'));
    const session = of('registered.session');
    assert.ok(session.includes('state session {') && session.includes('state signingIn {'));
    assert.ok(session.includes('active --> signingIn: TOKEN_UNAUTHORIZED<br>(to refreshing)<br>after tokenRefresh<br>(to refreshing)'));
    assert.ok(session.includes('signingIn --> forgotten: done∶ signIn [nodeForgotten]'));
    assert.match(session[0] ?? '', /^%%\{init: /, 'closer spacing: it fits 1,040 px');
  });

  it('draws the trigger of every transition of the machine somewhere', () => {
    // `done or error∶ X` stands for both.
    const all = diagrams.map((d) => d.mermaid).join('\n').replace(/done or error∶ ([^<\n]+)/g, 'done∶ $1<br>error∶ $1');
    let count = 0;
    for (const node of allNodes(registrarMachine.root)) {
      for (const [eventType, list] of [...node.transitions, ['', node.always ?? []] as const]) {
        for (const t of list) {
          const guard = t.guard === undefined ? '' : ` [${typeof t.guard === 'string' ? t.guard : String((t.guard as { type?: unknown }).type)}]`;
          const trigger = mermaidLabel(`${shortEventLabel(eventType)}${guard}`);
          assert.ok(all.includes(trigger), `${node.id}: ${trigger}`);
          count++;
        }
      }
    }
    assert.ok(count > 30, `only ${count} transitions`);
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

  it('merges an actor\'s done and error of one guard into one line (two two-line labels between two states overlap)', () => {
    assert.deepEqual(mergeDoneAndError(['done∶ a [else]', 'error∶ a [else]', 'after t']), ['done or error∶ a [else]', 'after t']);
    assert.deepEqual(mergeDoneAndError(['done∶ a [g]', 'error∶ a']), ['done∶ a [g]', 'error∶ a'], 'different guards stay apart');
    assert.ok(renderMermaid().split('\n').includes('  stopping --> stopped: done or error∶ shutdown'));
  });

  it('is made Mermaid-safe by mermaidLabel', () => {
    assert.equal(mermaidLabel('done: a; b'), 'done\u2236 a, b');
  });
});

describe('renderStatechartMarkdown', () => {
  const md = renderStatechartMarkdown();

  it('has the introduction, every diagram under its heading, and the tables', () => {
    assert.ok(md.startsWith('# The registrar statechart\n'));
    for (const d of renderDiagrams()) {
      const heading = d.focus === null ? '## Overview' : d.title.includes('.') ? `### \`${d.title}\`` : `## \`${d.title}\``;
      assert.ok(md.includes(`${heading}\n`), heading);
      assert.ok(md.includes(`\`\`\`mermaid\n${d.mermaid}\n\`\`\``), `${d.title}: the diagram`);
      assert.ok(md.indexOf(heading) < md.indexOf(d.mermaid), `${d.title}: below its heading`);
    }
    for (const delay of Object.keys(registrarMachine.implementations.delays)) {
      assert.match(md, new RegExp(`^\\| \`${delay}\` \\|`, 'm'), `delay ${delay}`);
    }
    for (const actor of Object.keys(registrarMachine.implementations.actors)) {
      assert.match(md, new RegExp(`^\\| \`${actor}\` \\|`, 'm'), `actor ${actor}`);
    }
    assert.match(md, /^\| `readSharedState` \| `registered\.health\.checkingSiblings` \|/m);
    assert.match(md, /^\| `attempt` \| `starting`, `acquiringLock`, `registering`, `rearming`, `healthCheckStale` \|/m, 'the tags table');
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
