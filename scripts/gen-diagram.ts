/**
 * Generates `docs/statechart.md` — Mermaid `stateDiagram-v2` diagrams of the
 * registrar statechart (an overview of the top-level states, then one per
 * compound state, each narrow enough to read at page width), with a short
 * introduction and tables of its delays and invoked actors — from
 * `registrarMachine` itself, so the picture cannot drift from the code.
 *
 * ```sh
 * node --import tsx scripts/gen-diagram.ts           # (re)write docs/statechart.md
 * node --import tsx scripts/gen-diagram.ts --check   # exit 1 if it is out of date
 * node --import tsx scripts/gen-diagram.ts --file <path> [--check]   # another file
 * ```
 *
 * Importing this module runs nothing: it exports the pure renderers.
 * test/browser/diagram-render.test.ts renders every diagram in Chromium and
 * checks that no labels overlap and that each fits 1,000 CSS px.
 *
 * A transition between states nested in different composite states is drawn
 * between their ancestors that are siblings, and its label names the inner
 * end(s): `(from trying)`. Labels cannot hold a colon: `done: X` is drawn
 * `done∶ X`. Self-loops are written inside their box (`↺`, `↻`): Mermaid puts
 * their labels on top of their neighbours'.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { registrarMachine } from '../machines/registrar.js';

/** Where the generated document lives. */
export const STATECHART_DOC_PATH: string = fileURLToPath(new URL('../docs/statechart.md', import.meta.url));

/** What each delay of the machine is (checked: a new delay without a description is an error). */
/** Compounds drawn top-down: left to right, Mermaid lays `backoff`'s title over its first edge label. */
const TOP_DOWN: ReadonlySet<string> = new Set(['backoff']);

/**
 * Nested states drawn as one (thick) box in their parent's diagram and in a
 * diagram of their own: beside `health` and `callbackWindow`, the `session`
 * region made `registered` 2,500 px wide.
 */
const OWN_DIAGRAM: ReadonlySet<string> = new Set(['session']);

/**
 * The loop's head: in the overview, the arrows back to it (from the states
 * after it in the machine) end at a dashed copy of it below them — drawn back
 * up, they made the overview 1,400 px wide.
 */
const LOOP_HEADS: ReadonlySet<string> = new Set(['acquiringLock']);

/**
 * Closer spacing for the diagrams that need it to fit 1,040 px (Mermaid's
 * defaults: 50 between nodes, 50 between ranks).
 */
const SPACING: Readonly<Record<string, { nodeSpacing?: number; rankSpacing?: number }>> = {
  registered: { nodeSpacing: 35 },
  session: { nodeSpacing: 25, rankSpacing: 35 },
};

/** The id of a loop head's copy in the overview. */
function againId(headId: string): string {
  return `${headId}_again`;
}

const DELAY_DESCRIPTIONS: Record<string, string> = {
  interval: 'One interval (`intervalMs`): how long to wait before looking at a busy lock again.',
  healthTtl:
    'The health-check TTL: one interval after the last DDS probe, or what remains of it when a sibling recorded the probe.',
  retryDelay:
    'The backoff after a retryable failure: the policy’s delay (crate: min(2^attempt, 60) s × [0.8, 1.2]), or `Retry-After` (at most `retryAfterMaxMs`) when longer.',
  cooldownDelay: 'After a conflict, a slow failure or `max_retry` failures: one interval, or `Retry-After` (at most `retryAfterMaxMs`) when longer.',
  callbackWindow:
    'How long after a successful answer DDS may still hand over the node secret (`callbackWindowMs`, policy `window`).',
  oneTurn:
    'Zero: `healthCheckStale` and `rearming` hold for one turn of the event loop instead of being left at once, so that snapshots, the inspector and the live view show it.',
  tokenRefresh:
    'Protocol `siwe`: when the access token is refreshed — `TOKEN_SAFETY_RATIO` (0.75) of its lifetime, ± up to `TOKEN_REAUTH_JITTER_MS`, never past its expiry.',
  signInRetry: 'A random wait of 0…`TOKEN_REAUTH_JITTER_MS` before retrying a failed sign-in.',
  sessionRestart:
    'After `TOKEN_REAUTH_MAX_RETRIES` retries failed: one interval, or sooner when the token still held expires first.',
};

/** What each top-level compound state is, above its own diagram (checked like the delays). */
const STATE_DESCRIPTIONS: Record<string, string> = {
  acquiringLock:
    'Takes the data directory\'s cross-process lock (waiting one interval while another registrar holds it), then, holding it, reads the shared state file: a live sibling\'s fresh registration is trusted instead of sending our own.',
  registered:
    'Three regions run side by side. `health`: under `legacy`, the TTL timer, re-armed by every DDS probe; when it runs out, the state file is read for a sibling\'s fresher probe before the health check is declared stale; under `siwe` it is `parked` (no TTL: only `REARM` leaves). `callbackWindow`: while open, DDS may hand over the node secret. `session` (`siwe`): the access token — signed in, refreshed at the safety ratio, retried, and a 403/404 from `verify` raises `REARM`.',
  session:
    'Protocol `siwe` (on unless `ACCESS_SESSION=false`): the access token of PROTOCOL.md §6.5. `signingIn` runs one sign-in (`first` without a token, `refreshing` with one still valid); `active` holds the token until `tokenRefresh` (0.75 of its lifetime) or `TOKEN_UNAUTHORIZED` (`reportUnauthorized`); a failed sign-in is retried after a short random wait (`retrying`), `TOKEN_REAUTH_MAX_RETRIES` times, then `signInFailed` waits one interval; a 403/404 from `verify` enters `forgotten`, which raises `REARM` (`registered` → `rearming`).',
  backoff:
    'After a failed attempt: exponential retries for a retryable failure, one interval of cooldown after a conflict, a slow failure or `max_retry` retryable ones.',
};

function stateDescription(node: AnyStateNode): string {
  const description = STATE_DESCRIPTIONS[node.key];
  if (!description) throw new Error(`scripts/gen-diagram.ts: describe the state "${node.key}"`);
  return description;
}

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
  signIn: 'Protocol `siwe`: one sign-in (nonce, SIWE message, signature, `verify`); keeps the token in its closure (and the token file) and resolves with its expiry only; never rejects.',
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
persists the status and ends in **stopped**.

Under protocol \`siwe\` (the wallet generation, PROTOCOL.md §6) the same chart runs: the attempt is
nonce → signed message → \`register-wallet\`, and **registered** parks — no TTL — while its
\`session\` region signs in for an access token and refreshes it. **rearming** is entered on
\`REARM\`: from the host application, or raised by the session when \`verify\` answers 403/404
(DDS no longer knows the node); a second re-arm before any sign-in succeeded backs off instead.`;

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

/**
 * `done∶ X [g]` and `error∶ X [g]` on one arrow as one line, `done or error∶ X [g]`:
 * two two-line labels between the same two states overlap in Chromium.
 */
export function mergeDoneAndError(labels: readonly string[]): string[] {
  const done = mermaidLabel('done: ');
  const error = mermaidLabel('error: ');
  return labels.flatMap((label) => {
    if (label.startsWith(done) && labels.includes(`${error}${label.slice(done.length)}`)) return [mermaidLabel(`done or error: ${label.slice(done.length)}`)];
    if (label.startsWith(error) && labels.includes(`${done}${label.slice(error.length)}`)) return [];
    return [label];
  });
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

/**
 * Which diagram: the overview (`null`: the top-level states, each drawn as one
 * box) or one top-level compound state, drawn with everything inside it and
 * the transitions that leave it.
 */
export type DiagramFocus = AnyStateNode | null;

/** One diagram of the document: its heading, the state it shows (null: the overview) and its Mermaid text. */
export interface Diagram {
  title: string;
  focus: DiagramFocus;
  mermaid: string;
}

/** The top-level states that have states inside them: each gets a diagram of its own. */
export function compoundStates(machine: AnyStateMachine = registrarMachine): AnyStateNode[] {
  return children(machine.root).filter((n) => children(n).length > 0);
}

/** The nested states of {@link OWN_DIAGRAM} inside `node` (a top-level compound state). */
function ownDiagramStates(node: AnyStateNode): AnyStateNode[] {
  return allNodes(node).filter((n) => n !== node && OWN_DIAGRAM.has(n.key) && children(n).length > 0);
}

/**
 * Styles: a state drawn only as the far end of a transition (compound
 * diagrams), a compound state and the box standing for every state (overview).
 */
const CLASS_DEFS = {
  elsewhere: 'classDef elsewhere stroke-dasharray:4 4',
  compound: 'classDef compound stroke-width:3px',
  everywhere: 'classDef everywhere fill:#fff,stroke-dasharray:2 2',
} as const;

/** The overview's box for the transitions defined on the machine itself. */
const ANY_STATE_ID = 'any_state';

/**
 * The machine as a Mermaid `stateDiagram-v2` (the diagram's lines, without
 * the fence): the overview (`focus` null, the default), or one compound state.
 *
 * The overview draws the top-level states and the transitions between them
 * (the transitions from all the states inside one, merged: one arrow per
 * pair of states, its events one per line); a compound state is thick-bordered
 * and has its own diagram. A compound state's diagram draws it with
 * everything inside, the transitions within it and those that leave it (to
 * dashed boxes); the ways in are in the overview. The transitions defined on
 * the machine itself (in every state) are in no diagram: a table lists them.
 */
export function renderMermaid(machine: AnyStateMachine = registrarMachine, focus: DiagramFocus = null): string {
  const root = machine.root;
  if (focus !== null && (children(focus).length === 0 || (focus.parent !== root && !OWN_DIAGRAM.has(focus.key)))) {
    throw new Error(`renderMermaid: ${focus.id} is not a top-level compound state (nor one with a diagram of its own)`);
  }
  const ids = mermaidIds(machine);
  const id = (n: AnyStateNode): string => {
    const v = ids.get(n);
    if (v === undefined) throw new Error(`no id for ${n.id}`);
    return v;
  };
  const inFocus = (n: AnyStateNode): boolean => focus !== null && (n === focus || isAncestor(focus, n));
  // A state with a diagram of its own, inside the focus: drawn as one box here.
  const collapsed = (n: AnyStateNode): boolean => n !== focus && OWN_DIAGRAM.has(n.key) && children(n).length > 0;
  const collapsedBox = (n: AnyStateNode): AnyStateNode | null => {
    let box: AnyStateNode | null = null;
    for (let a: AnyStateNode | undefined = n; a && a !== focus; a = a.parent) if (collapsed(a)) box = a;
    return box;
  };
  // A state as drawn: itself within the focus (or the box it is collapsed into), elsewhere its top-level ancestor.
  const drawn = (n: AnyStateNode): AnyStateNode => (inFocus(n) ? (collapsedBox(n) ?? n) : childOf(root, n));

  // Place every edge in the block of the composite state that holds both ends.
  const edges = new Map<AnyStateNode, Map<string, string[]>>();
  const elsewhere = new Set<AnyStateNode>();
  const order = children(root);
  const again = new Set<AnyStateNode>();
  const addEdge = (holder: AnyStateNode, from: AnyStateNode, to: AnyStateNode, label: string): void => {
    const block = edges.get(holder) ?? new Map<string, string[]>();
    edges.set(holder, block);
    const back = focus === null && LOOP_HEADS.has(to.key) && order.indexOf(from) > order.indexOf(to);
    if (back) again.add(to);
    const key = `${id(from)} --> ${back ? againId(id(to)) : id(to)}`;
    const labels = block.get(key) ?? [];
    if (!labels.includes(label)) labels.push(label);
    block.set(key, labels);
  };
  // A transition that stays in a state drawn as a plain box is written inside it (a
  // self-loop's label lands on its neighbours'): `↺` handled without leaving, `↻` re-entered.
  const inside = new Map<AnyStateNode, string[]>();
  const expanded = (n: AnyStateNode): boolean => inFocus(n) && children(n).length > 0 && collapsedBox(n) === null;
  for (const node of allNodes(root).slice(1)) {
    if (focus !== null && !inFocus(node)) continue;
    for (const b of branchesOf(node)) {
      const stays = b.targets.length === 0 ? '↺' : b.targets.length === 1 && b.targets[0] === node ? '↻' : null;
      if (stays !== null && !expanded(node)) {
        if (drawn(node) === node) inside.set(node, [...(inside.get(node) ?? []), mermaidLabel(`${stays} ${branchLabel(b)}`)]);
        continue;
      }
      for (const target of b.targets.length ? b.targets : [node]) {
        const source = drawn(node);
        const end = drawn(target);
        // What happens inside a state drawn as one box is left to its own diagram.
        if (source === end && source !== node) continue;
        if (!inFocus(end) && end !== source) elsewhere.add(end);
        const holder = end === source ? (source.parent ?? root) : commonAncestor(source, end);
        const from = childOf(holder, source);
        const to = childOf(holder, end);
        // Name the inner ends that are not drawn where the arrow starts or ends (within the focus only).
        const notes =
          focus === null ? [] : [from !== node ? `from ${node.key}` : '', to !== target && inFocus(target) ? `to ${target.key}` : ''].filter(Boolean);
        // The notes on a line of their own keep the label narrow.
        addEdge(holder, from, to, `${mermaidLabel(branchLabel(b))}${notes.length ? `<br>(${notes.join(', ')})` : ''}`);
      }
    }
  }
  const edgeLines = (holder: AnyStateNode): string[] =>
    [...(edges.get(holder) ?? new Map<string, string[]>())].map(([key, labels]) => `${key}: ${mergeDoneAndError(labels).join('<br>')}`);

  const spacing = focus === null ? undefined : SPACING[focus.key];
  const lines: string[] = [...(spacing ? [`%%{init: ${JSON.stringify({ state: spacing })}}%%`] : []), 'stateDiagram-v2'];
  const declare = (kid: AnyStateNode, indent: string, expand: boolean): void => {
    if (expand && children(kid).length > 0) {
      lines.push(kid.type === 'parallel' ? `${indent}state "${kid.key} (parallel regions)" as ${id(kid)} {` : `${indent}state ${id(kid)} {`);
      if (kid === focus && kid.type !== 'parallel' && !TOP_DOWN.has(kid.key)) lines.push(`${indent}  direction LR`);
      block(kid, `${indent}  `);
      lines.push(`${indent}}`);
    } else {
      // A state with lines inside needs its name as a title (a description alone replaces it).
      const own = [...(kid.type === 'final' ? ['(final)'] : []), ...(inside.get(kid) ?? [])];
      lines.push(id(kid) === kid.key && own.length === 0 ? `${indent}${kid.key}` : `${indent}state "${kid.key}" as ${id(kid)}`);
      for (const line of own) lines.push(`${indent}${id(kid)} : ${line}`);
    }
  };
  const block = (node: AnyStateNode, indent: string): void => {
    const kids = children(node);
    if (node.type === 'parallel') {
      // The regions side by side, each a box (Mermaid's `--` adds a second, dashed box around each).
      if (edgeLines(node).length) throw new Error(`transitions between the regions of ${node.id} cannot be drawn`);
      for (const region of kids) declare(region, indent, !collapsed(region));
      return;
    }
    // Declare every child here, so that each is drawn inside its parent even
    // when all of its transitions are drawn further out.
    const nested = focus !== null && focus.parent !== root;
    const shown = node === root ? [...(nested ? [focus] : []), ...kids.filter((k) => focus === null || k === focus || elsewhere.has(k))] : kids;
    for (const kid of shown) declare(kid, indent, node !== root ? !collapsed(kid) : kid === focus);
    if (node !== root || focus === null) for (const initial of node.initial?.target ?? []) lines.push(`${indent}[*] --> ${id(initial)}`);
    for (const line of edgeLines(node)) lines.push(`${indent}${line}`);
  };
  block(root, '  ');

  if (focus === null) {
    for (const head of again) lines.push(`  state "${head.key}" as ${againId(id(head))}`);
    // The transitions defined on the machine itself, from a box standing for every state.
    const everywhere = branchesOf(root);
    if (everywhere.length) {
      if ([...ids.values()].includes(ANY_STATE_ID)) throw new Error(`a state is called ${ANY_STATE_ID}: pick another id for "any state"`);
      lines.push(`  state "any state" as ${ANY_STATE_ID}`);
      for (const b of everywhere) {
        if (b.targets.length === 0) lines.push(`  ${ANY_STATE_ID} : ${mermaidLabel(`↺ ${branchLabel(b)}`)}`);
      }
      for (const b of everywhere) {
        for (const t of b.targets) lines.push(`  ${ANY_STATE_ID} --> ${id(drawn(t))}: ${mermaidLabel(branchLabel(b))}`);
      }
      lines.push(`  ${CLASS_DEFS.everywhere}`, `  class ${ANY_STATE_ID} everywhere`);
    }
    if (again.size) lines.push(`  ${CLASS_DEFS.elsewhere}`, `  class ${[...again].map((n) => againId(id(n))).join(', ')} elsewhere`);
    const compounds = compoundStates(machine);
    if (compounds.length) lines.push(`  ${CLASS_DEFS.compound}`, `  class ${compounds.map(id).join(', ')} compound`);
  } else {
    if (elsewhere.size) lines.push(`  ${CLASS_DEFS.elsewhere}`, `  class ${[...elsewhere].map(id).join(', ')} elsewhere`);
    const boxes = ownDiagramStates(focus).filter((n) => collapsedBox(n) === n);
    if (boxes.length) lines.push(`  ${CLASS_DEFS.compound}`, `  class ${boxes.map(id).join(', ')} compound`);
  }
  return lines.join('\n');
}

/** Every diagram of the document: the overview, then one per compound state, in the machine's order. */
export function renderDiagrams(machine: AnyStateMachine = registrarMachine): Diagram[] {
  return [
    { title: 'Overview', focus: null, mermaid: renderMermaid(machine) },
    ...compoundStates(machine).flatMap((top) =>
      [top, ...ownDiagramStates(top)].map((node) => ({ title: node.path.join('.'), focus: node, mermaid: renderMermaid(machine, node) })),
    ),
  ];
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
    'How to read the diagrams. One overview of the top-level states, then one diagram per state',
    'that has states inside it (**thick** boxes in the overview); a thick box inside such a diagram (the',
    '`session` region of `registered`) has a diagram of its own after it. Each is generated from the machine.',
    '',
    '- An arrow is a transition; its label is what triggers it, one per line when several lead the',
    '  same way: `done: X` / `error: X` — the invoked actor `X` resolved / rejected (drawn `done∶ X`:',
    '  Mermaid labels cannot hold a colon; `done or error: X` — either); `after D` — the delay `D` ran',
    '  out; `always` — taken as soon as its guard holds; `[guard]` — the guard that picks the branch.',
    '- Inside a box, below its name: `↺ E` — the event `E` is handled without leaving the state (its',
    '  actions run); `↻ E` — `E` leaves the state and enters it again (its timers restart); `(final)` —',
    '  the machine ends there.',
    '- The overview\'s dotted **any state** box stands for every state: what it handles, every state',
    '  handles (until it ends in a final state).',
    '- In the overview, the arrows back to `acquiringLock` (where every new registration starts) end at',
    '  a dashed copy of it at the bottom: the same state, drawn twice.',
    '- A state\'s own diagram draws it with everything inside it, and the transitions that leave it, to',
    '  dashed boxes; the ways into it are in the overview. An arrow leaving from a state inside is',
    '  drawn from the outer box, with the inner state in parentheses: `(from trying)`.',
    '',
    ...renderDiagrams(machine).flatMap((d) => {
      const heading = d.focus === null ? '## Overview' : d.focus.parent === machine.root ? `## ${code(d.title)}` : `### ${code(d.title)}`;
      const about = d.focus === null ? [] : [stateDescription(d.focus), ''];
      return [heading, '', ...about, '```mermaid', d.mermaid, '```', ''];
    }),
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
