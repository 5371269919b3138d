/**
 * Generates `docs/statechart.md` — a Mermaid `stateDiagram-v2` of the
 * registrar statechart, with a short introduction and tables of its delays
 * and invoked actors — from `registrarMachine` itself, so the picture cannot
 * drift from the code.
 *
 * ```sh
 * node --import tsx scripts/gen-diagram.ts           # (re)write docs/statechart.md
 * node --import tsx scripts/gen-diagram.ts --check   # exit 1 if it is out of date
 * node --import tsx scripts/gen-diagram.ts --file <path> [--check]   # another file
 * ```
 *
 * Importing this module runs nothing: it exports the pure renderers.
 *
 * Mermaid cannot draw a transition between states nested in different
 * composite states, so such a transition is drawn between their ancestors
 * that are siblings, and its label names the inner end(s): `(from trying)`.
 * Its labels cannot hold a colon either: `done: X` is drawn `done∶ X`.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { registrarMachine } from '../machines/registrar.js';

/** Where the generated document lives. */
export const STATECHART_DOC_PATH: string = fileURLToPath(new URL('../docs/statechart.md', import.meta.url));

/** What each delay of the machine is (checked: a new delay without a description is an error). */
const DELAY_DESCRIPTIONS: Record<string, string> = {
  interval: 'One interval (`intervalMs`): how long to wait before looking at a busy lock again.',
  healthTtl:
    'The health-check TTL: one interval after the last DDS probe, or what remains of it when a sibling recorded the probe.',
  retryDelay:
    'The backoff after a retryable failure: the policy’s delay (crate: min(2^attempt, 60) s × [0.8, 1.2]), or `Retry-After` when longer.',
  cooldownDelay: 'After a conflict, a slow failure or `max_retry` failures: one interval, or `Retry-After` when longer.',
  callbackWindow:
    'How long after a successful answer DDS may still hand over the node secret (`callbackWindowMs`, policy `window`).',
  oneTurn:
    'Zero: `healthCheckStale` holds for one turn of the event loop instead of being left at once, so that snapshots, the inspector and the live view show it.',
};

/** What each state tag means (checked like the delays). */
const TAG_DESCRIPTIONS: Record<string, string> = {
  attempt:
    'A registration attempt is under way: from the start or the decision to register again until DDS answered or a live sibling’s registration was trusted. `snapshot.hasTag(\'attempt\')`.',
};

/** What each invoked actor does (checked like the delays). */
const ACTOR_DESCRIPTIONS: Record<string, string> = {
  checkCredentials: 'Checks the private key (and whatever must hold before the first attempt).',
  acquireLock: 'Tries the cross-process lock of the data directory once.',
  readSharedState: 'Reads the shared state file and judges who wrote it (a live sibling or not) and how old its probe is.',
  registerWithDds: 'Signs and sends one registration request; resolves with the outcome, failures classed, never rejects for DDS.',
  shutdown: 'Releases the lock and persists `disconnected` (unless a live sibling is registered).',
};

/** The introduction, for a newcomer. */
const INTRO = `The registrar keeps a posemesh node registered with DDS. It **starts** by checking its
credentials (an invalid key ends in **failed**, without retries). It then takes the data
directory's **lock** — when another registrar holds it, it waits one interval and tries again —
and, holding it, reads the shared state file: if a live sibling registered within the interval,
it trusts that registration and skips its own request. Otherwise it is **registering**: one
signed request to DDS, the lock released as soon as the answer is in. A success makes it
**registered**, where two things run side by side: the health-check TTL (every DDS probe re-arms
it; when it runs out, the state file is consulted for a sibling's fresher probe before the health
check is declared **stale**, which starts a new registration) and the callback window, during which
DDS may hand over the node secret. A failure leads to **backoff**: exponential retries for
retryable failures, a one-interval cooldown after a conflict, a "slow" failure or \`max_retry\`
retryable ones. \`REGISTER_NOW\` skips the wait; \`STOP\`, from any state, releases the lock,
persists the status and ends in **stopped**.`;

// ---------------------------------------------------------------------------
// The machine, walked
// ---------------------------------------------------------------------------

function children(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states);
}

function allNodes(node: AnyStateNode): AnyStateNode[] {
  return [node, ...children(node).flatMap(allNodes)];
}

function isAncestor(ancestor: AnyStateNode, node: AnyStateNode): boolean {
  for (let n = node.parent; n; n = n.parent) if (n === ancestor) return true;
  return false;
}

/** The innermost node that strictly contains both. */
function commonAncestor(a: AnyStateNode, b: AnyStateNode): AnyStateNode {
  for (let n = a.parent; n; n = n.parent) if (isAncestor(n, b)) return n;
  throw new Error(`no common ancestor of ${a.id} and ${b.id}`);
}

/** `node`, or its ancestor that is a direct child of `ancestor`. */
function childOf(ancestor: AnyStateNode, node: AnyStateNode): AnyStateNode {
  let n = node;
  while (n.parent && n.parent !== ancestor) n = n.parent;
  return n;
}

/** A transition's event, shortened: `done: X`, `error: X`, `after D`, `always`. */
export function shortEventLabel(eventType: string): string {
  if (eventType === '') return 'always';
  const done = /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return `done: ${done[1]}`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(eventType);
  if (error) return `error: ${error[1]}`;
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  return eventType;
}

function guardLabel(guard: unknown): string | null {
  if (guard === undefined) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String(guard.type);
  return 'guarded';
}

interface Branch {
  source: AnyStateNode;
  eventType: string;
  targets: readonly AnyStateNode[];
  guard: string | null;
  /** Unguarded, after guarded branches of the same event. */
  isElse: boolean;
}

function branchesOf(node: AnyStateNode): Branch[] {
  const lists: Array<[string, ReadonlyArray<{ target?: readonly AnyStateNode[]; guard?: unknown }>]> = [
    ...node.transitions,
  ];
  if (node.always?.length) lists.push(['', node.always]);
  return lists.flatMap(([eventType, list]) =>
    list.map((t, i) => {
      const guard = guardLabel(t.guard);
      return {
        source: node,
        eventType,
        targets: t.target ?? [],
        guard,
        isElse: guard === null && i > 0 && list.slice(0, i).some((p) => p.guard !== undefined),
      };
    }),
  );
}

function branchLabel(b: Branch): string {
  const guard = b.guard ? ` [${b.guard}]` : b.isElse ? ' [else]' : '';
  return `${shortEventLabel(b.eventType)}${guard}`;
}

/**
 * Mermaid's state-diagram lexer ends a transition's label at `:` or `;`
 * (`":"[^:\n;]+`), so a label keeps its look with U+2236 RATIO (`∶`) for a
 * colon and a comma for a semicolon.
 */
export function mermaidLabel(text: string): string {
  return text.replace(/:/g, '\u2236').replace(/;/g, ',');
}

/** Mermaid ids are global: a key used twice gets its parent's key in front. */
function mermaidIds(machine: AnyStateMachine): Map<AnyStateNode, string> {
  const nodes = allNodes(machine.root).slice(1);
  const count = new Map<string, number>();
  for (const n of nodes) count.set(n.key, (count.get(n.key) ?? 0) + 1);
  const ids = new Map<AnyStateNode, string>();
  for (const n of nodes) {
    const unique = count.get(n.key) === 1;
    if (!unique && children(n).length > 0) throw new Error(`composite state key used twice: ${n.key}`);
    ids.set(n, unique ? n.key : `${n.parent?.key ?? ''}_${n.key}`);
  }
  return ids;
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/** The machine as a Mermaid `stateDiagram-v2` (the diagram's lines, without the fence). */
export function renderMermaid(machine: AnyStateMachine = registrarMachine): string {
  const ids = mermaidIds(machine);
  const id = (n: AnyStateNode): string => {
    const v = ids.get(n);
    if (v === undefined) throw new Error(`no id for ${n.id}`);
    return v;
  };

  // Place every edge in the block of the composite state that holds both ends.
  const edges = new Map<AnyStateNode, string[]>();
  const everywhere: string[] = [];
  for (const node of allNodes(machine.root)) {
    for (const b of branchesOf(node)) {
      const label = branchLabel(b);
      if (node === machine.root) {
        everywhere.push(b.targets.length ? `${label} → ${b.targets.map((t) => t.key).join(', ')}` : label);
        continue;
      }
      const targets = b.targets.length ? b.targets : [node];
      for (const target of targets) {
        const holder = target === node ? (node.parent ?? machine.root) : commonAncestor(node, target);
        const from = childOf(holder, node);
        const to = childOf(holder, target);
        const notes = [from !== node ? `from ${node.key}` : '', to !== target ? `to ${target.key}` : ''].filter(Boolean);
        const text = mermaidLabel(`${label}${notes.length ? ` (${notes.join(', ')})` : ''}`);
        const line = `${id(from)} --> ${id(to)}: ${text}`;
        edges.set(holder, [...(edges.get(holder) ?? []), line]);
      }
    }
  }

  const lines: string[] = ['stateDiagram-v2'];
  const block = (node: AnyStateNode, indent: string): void => {
    const kids = children(node);
    if (node.type === 'parallel') {
      // Regions are separated by `--`; a region's own self-loops are drawn in its part.
      const own = edges.get(node) ?? [];
      kids.forEach((region, i) => {
        if (i > 0) lines.push(`${indent}--`);
        lines.push(`${indent}state ${id(region)} {`);
        block(region, `${indent}  `);
        lines.push(`${indent}}`);
        for (const line of own.filter((l) => l.startsWith(`${id(region)} --> ${id(region)}:`))) lines.push(`${indent}${line}`);
      });
      const across = own.filter((l) => !kids.some((r) => l.startsWith(`${id(r)} --> ${id(r)}:`)));
      if (across.length) throw new Error(`transitions between the regions of ${node.id} cannot be drawn`);
      return;
    }
    // Declare every child here, so that each is drawn inside its parent even
    // when all of its transitions are drawn further out.
    for (const kid of kids) {
      if (children(kid).length > 0) {
        lines.push(`${indent}state ${id(kid)} {`);
        block(kid, `${indent}  `);
        lines.push(`${indent}}`);
      } else {
        lines.push(id(kid) === kid.key ? `${indent}${kid.key}` : `${indent}state "${kid.key}" as ${id(kid)}`);
      }
    }
    for (const initial of node.initial?.target ?? []) lines.push(`${indent}[*] --> ${id(initial)}`);
    for (const line of edges.get(node) ?? []) lines.push(`${indent}${line}`);
    for (const kid of kids) if (kid.type === 'final') lines.push(`${indent}${id(kid)} --> [*]`);
  };
  block(machine.root, '  ');

  const first = machine.root.initial?.target[0];
  if (everywhere.length && first) {
    lines.push(`  note right of ${id(first)}`, '    In every state until the end:', ...everywhere.map((e) => `    ${e}`), '  end note');
  }
  return lines.join('\n');
}

function code(s: string): string {
  return `\`${s}\``;
}

function relativeId(machine: AnyStateMachine, node: AnyStateNode): string {
  return node === machine.root ? '(every state)' : node.path.join('.');
}

/** The whole `docs/statechart.md`. */
export function renderStatechartMarkdown(machine: AnyStateMachine = registrarMachine): string {
  const nodes = allNodes(machine.root);

  // Delays: where each is armed.
  const delayUse = new Map<string, string[]>();
  for (const node of nodes) {
    for (const t of node.after) {
      const delay = /^xstate\.after\.([^.]+)\./.exec(t.eventType)?.[1] ?? String(t.delay);
      delayUse.set(delay, [...(delayUse.get(delay) ?? []), relativeId(machine, node)]);
    }
  }
  const delayNames = [...new Set([...Object.keys(machine.implementations.delays), ...delayUse.keys()])];
  const delayRows = delayNames.map((name) => {
    const description = DELAY_DESCRIPTIONS[name];
    if (!description) throw new Error(`scripts/gen-diagram.ts: describe the delay "${name}"`);
    const used = delayUse.get(name)?.map(code).join(', ') ?? '(unused)';
    return `| ${code(name)} | ${used} | ${description} |`;
  });

  // Invoked actors: where, and what their outcomes lead to.
  const actorRows: string[] = [];
  const actorNames = [
    ...new Set([
      ...Object.keys(machine.implementations.actors),
      ...nodes.flatMap((n) => n.invoke.map((i) => String(i.src))),
    ]),
  ];
  for (const name of actorNames) {
    const description = ACTOR_DESCRIPTIONS[name];
    if (!description) throw new Error(`scripts/gen-diagram.ts: describe the actor "${name}"`);
    for (const node of nodes) {
      for (const inv of node.invoke) {
        if (String(inv.src) !== name) continue;
        const outcomes = branchesOf(node)
          .filter((b) => b.eventType === `xstate.done.actor.${inv.id}` || b.eventType === `xstate.error.actor.${inv.id}`)
          .map((b) => {
            const kind = b.eventType.startsWith('xstate.done.') ? 'done' : 'error';
            const guard = b.guard ? ` [${b.guard}]` : b.isElse ? ' [else]' : '';
            return `${kind}${guard} → ${b.targets.map((t) => code(relativeId(machine, t))).join(', ') || 'stays'}`;
          });
        actorRows.push(`| ${code(name)} | ${code(relativeId(machine, node))} | ${description} | ${outcomes.join('; ')} |`);
      }
    }
  }

  // Tags: which states carry each.
  const tagged = new Map<string, string[]>();
  for (const node of nodes) {
    for (const tag of node.tags) tagged.set(tag, [...(tagged.get(tag) ?? []), relativeId(machine, node)]);
  }
  const tagRows = [...tagged].map(([tag, states]) => {
    const description = TAG_DESCRIPTIONS[tag];
    if (!description) throw new Error(`scripts/gen-diagram.ts: describe the tag "${tag}"`);
    return `| ${code(tag)} | ${states.map(code).join(', ')} | ${description} |`;
  });

  const everywhere = branchesOf(machine.root).map(
    (b) =>
      `| ${code(branchLabel(b))} | ${b.targets.length ? b.targets.map((t) => code(relativeId(machine, t))).join(', ') : 'stays (actions only)'} |`,
  );

  return [
    '# The registrar statechart',
    '',
    '<!-- Generated from machines/registrar.ts by scripts/gen-diagram.ts: do not edit by hand.',
    '     Regenerate with `node --import tsx scripts/gen-diagram.ts`. -->',
    '',
    INTRO,
    '',
    'Transition labels: `done: X` / `error: X` — the invoked actor `X` resolved / rejected (drawn',
    '`done∶ X`: Mermaid labels cannot hold a colon);',
    '`after D` — the delay `D` ran out; `always` — taken as soon as its guard holds; `[guard]` — the',
    'guard that picks the branch. A transition between states nested in different composite states',
    'is drawn between their outermost distinct ancestors, with the inner end named in parentheses.',
    '',
    '```mermaid',
    renderMermaid(machine),
    '```',
    '',
    '## Events handled in every state',
    '',
    '| Event | Goes to |',
    '| --- | --- |',
    ...everywhere,
    '',
    '## Delays',
    '',
    'Every wait is one of these (no other timers; each capped at 24 h).',
    '',
    '| Delay | Armed in | What it is |',
    '| --- | --- | --- |',
    ...delayRows,
    '',
    '## Tags',
    '',
    'A tag names what several states share, so that code reads it instead of listing state names.',
    '',
    '| Tag | States | What it means |',
    '| --- | --- | --- |',
    ...tagRows,
    '',
    '## Output',
    '',
    'Once in a final state, the machine has an `output` (what `toPromise(registrar)` resolves with):',
    '`{ outcome: \'stopped\' }` after `STOP`, `{ outcome: \'failed\', error: { code, message } }` after',
    'an invalid key. `registrarDone(registrar)` resolves for the first and rejects with',
    '`RegistrarFailedError` for the second.',
    '',
    '## Invoked actors',
    '',
    'The effects run as invoked actors; `src/registrar.ts` provides the real ones.',
    '',
    '| Actor | Invoked in | What it does | Outcomes |',
    '| --- | --- | --- | --- |',
    ...actorRows,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

const USAGE = 'usage: node --import tsx scripts/gen-diagram.ts [--check] [--file <path>]';

function main(argv: readonly string[]): number {
  let check = false;
  let file = STATECHART_DOC_PATH;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--check') check = true;
    else if (arg === '--file' && argv[i + 1] !== undefined) file = argv[++i] ?? file;
    else {
      console.error(USAGE);
      return 2;
    }
  }
  const wanted = renderStatechartMarkdown();
  let current: string | null;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    current = null;
  }
  if (check) {
    if (current === wanted) return 0;
    console.error(`${file} is out of date: run \`node --import tsx scripts/gen-diagram.ts\` and commit it.`);
    return 1;
  }
  if (current !== wanted) writeFileSync(file, wanted);
  console.log(`${current === wanted ? 'unchanged' : 'wrote'} ${file}`);
  return 0;
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedPath)).href) {
  process.exitCode = main(process.argv.slice(2));
}
