/**
 * docs/statechart.md can be read: every Mermaid diagram in it, rendered in
 * Chromium by the Mermaid library (node_modules, nothing fetched), draws,
 * has no two labels on top of each other, and fits a page at its natural
 * size.
 *
 * The criterion: the SVG's natural width (Mermaid's `max-width`, the width it
 * is drawn at when the page is wide enough) is at most 1,040 CSS px, so a
 * documentation page (GitHub's is about 880–1,000 px) shows it unscaled or
 * barely scaled (by 4 % at most); and no two innermost `.nodeLabel`/`.edgeLabel` boxes overlap.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { STATECHART_DOC_PATH } from '../../scripts/gen-diagram.js';
import { NO_CHROMIUM, newPage, type PageGlobals } from '../support/index.js';

/** The widest a diagram may be drawn at its natural size, CSS px. */
const MAX_WIDTH_PX = 1040;
/** Two label boxes overlap when they share more than this, px, in both directions (not mere touching). */
const OVERLAP_TOLERANCE_PX = 0.5;

const MERMAID_SCRIPT = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');

/** The Mermaid diagrams of a Markdown text. */
function mermaidBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
}

interface Rendered {
  width: number;
  height: number;
  labels: number;
  overlaps: string[];
}

describe('docs/statechart.md in Chromium', { skip: NO_CHROMIUM, timeout: 120_000 }, () => {
  it(`every diagram renders, without overlapping labels, at most ${MAX_WIDTH_PX} px wide`, async (t) => {
    const diagrams = mermaidBlocks(readFileSync(STATECHART_DOC_PATH, 'utf8'));
    assert.ok(diagrams.length > 0, 'no Mermaid diagram in docs/statechart.md');
    const { page, errors } = await newPage(t, { width: 2400, height: 1600 });
    await page.setContent('<!DOCTYPE html><html><body></body></html>');
    await page.addScriptTag({ path: MERMAID_SCRIPT });

    const problems: string[] = [];
    for (const [i, source] of diagrams.entries()) {
      const r = await page.evaluate(
        async (source: string, i: number, tolerance: number): Promise<Rendered> => {
          const page = globalThis as unknown as PageGlobals & {
            mermaid: { initialize(config: object): void; render(id: string, text: string): Promise<{ svg: string }> };
          };
          const { mermaid, document } = page;
          mermaid.initialize({ startOnLoad: false });
          const { svg } = await mermaid.render(`diagram${i}`, source);
          const holder = document.createElement('div');
          holder.innerHTML = svg;
          document.body.append(holder);
          const el = holder.querySelector('svg');
          if (!el?.viewBox) throw new Error('no svg');
          const { width, height } = el.viewBox.baseVal;
          // Drawn at its natural size (Mermaid sets max-width to it; the page is wider).
          el.style.width = `${width}px`;
          el.style.maxWidth = 'none';
          const boxes = [...holder.querySelectorAll('.nodeLabel, .edgeLabel')]
            .filter((e) => !e.querySelector('.nodeLabel, .edgeLabel') && (e.textContent ?? '').trim() !== '')
            .map((e) => ({ text: (e.textContent ?? '').trim(), box: e.getBoundingClientRect() }))
            .filter((l) => l.box.width > 0 && l.box.height > 0);
          const overlaps: string[] = [];
          boxes.forEach((a, j) => {
            for (const b of boxes.slice(j + 1)) {
              const x = Math.min(a.box.right, b.box.right) - Math.max(a.box.left, b.box.left);
              const y = Math.min(a.box.bottom, b.box.bottom) - Math.max(a.box.top, b.box.top);
              if (x > tolerance && y > tolerance) overlaps.push(`"${a.text}" and "${b.text}"`);
            }
          });
          holder.remove();
          return { width, height, labels: boxes.length, overlaps };
        },
        source,
        i,
        OVERLAP_TOLERANCE_PX,
      );
      const outer = /^ {2}state (?:"[^"]*" as )?(\S+) \{$/m.exec(source)?.[1];
      const name = `diagram ${i + 1} (${diagrams.length > 1 && outer !== undefined ? outer : 'overview'})`;
      t.diagnostic(`${name}: ${Math.round(r.width)} × ${Math.round(r.height)} px, ${r.labels} labels`);
      assert.ok(r.labels > 0, `${name} has no labels: it did not draw`);
      if (r.width > MAX_WIDTH_PX) problems.push(`${name} is ${Math.round(r.width)} px wide (at most ${MAX_WIDTH_PX})`);
      for (const o of r.overlaps) problems.push(`${name}: labels ${o} overlap`);
    }
    assert.deepEqual(errors, [], 'the page threw');
    assert.deepEqual(problems, []);
  });
});
