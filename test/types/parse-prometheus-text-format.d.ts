// The package ships no types: what test/support/prometheus.ts uses of it.
declare module 'parse-prometheus-text-format' {
  /** One sample of a family (histograms and summaries have other shapes, unused here). */
  export interface PrometheusSample {
    value: string;
    labels?: Record<string, string>;
  }
  /** One metric family: `# HELP`, `# TYPE` and its samples. */
  export interface PrometheusFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: PrometheusSample[];
  }
  /** Parse the Prometheus text exposition format; throws on a malformed line. */
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
