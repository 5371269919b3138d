/**
 * Reading a Prometheus scrape (the text exposition format prom-client
 * writes) with parse-prometheus-text-format, and looking samples up.
 */
import assert from 'node:assert/strict';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';

export type { PrometheusFamily };

/** Parse a scrape; every family must have `# HELP` and `# TYPE` and every value be a number. */
export function parseScrape(text: string): PrometheusFamily[] {
  const families = parsePrometheusTextFormat(text);
  for (const family of families) {
    assert.notEqual(family.type, 'UNTYPED', `${family.name}: no # TYPE`);
    assert.notEqual(family.help, '', `${family.name}: no # HELP`);
    for (const sample of family.metrics) assert.ok(Number.isFinite(Number(sample.value)), `${family.name}: value ${sample.value}`);
  }
  return families;
}

/** The value of the sample of `name` whose labels are exactly `labels`; undefined when there is none. */
export function sampleValue(families: readonly PrometheusFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const sample = family?.metrics.find((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === wanted);
  return sample === undefined ? undefined : Number(sample.value);
}
