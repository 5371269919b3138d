/**
 * The protocol vectors of an independent implementation
 * (`../shared/protocol/`, beside the repository): read where they live, never copied.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

/** The vector files there. */
export type VectorFile = 'vectors.json' | 'siwe-vectors.json';

/** `file` as JSON, typed as the test knows it. */
export function readProtocolVectors<T>(file: VectorFile): T {
  return JSON.parse(readFileSync(new URL(`../../../shared/protocol/${file}`, import.meta.url), 'utf8')) as T;
}

/** Assert that `vectors` holds at least `least[kind]` vectors of each kind named (a truncated file proves less). */
export function assertVectorCounts<T extends object>(vectors: T, least: { [K in keyof T]?: number }): void {
  for (const [kind, n] of Object.entries(least) as [keyof T & string, number][]) {
    const list = vectors[kind];
    assert.ok(Array.isArray(list) && list.length >= n, `${kind}: ${Array.isArray(list) ? list.length : 'none'} vectors, at least ${n} expected`);
  }
}
