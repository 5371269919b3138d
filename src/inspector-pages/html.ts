/**
 * What the inspector relay's pages share: each is one HTML document with its
 * one style and one script inline, under a strict Content-Security-Policy
 * built from their hashes (no other source is allowed), and headers that keep
 * it out of caches, frames and referrers.
 */
import { createHash } from 'node:crypto';

/** A page as the relay serves it. */
export interface HtmlPage {
  readonly html: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** A CSP source for an inline script or style: `'sha256-…'`. */
export function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A JSON value written so that it is also safe inside an HTML `<script>` element. */
export function scriptValue(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

/**
 * `connect-src` for the relay's WebSocket: `'self'` covers ws: to the same
 * host and port in CSP 3; the explicit URL helps older browsers (an IPv6
 * literal is not valid in a host-source, so it is left out).
 */
export function connectSource(wsUrl: string): string {
  return `connect-src 'self'${wsUrl.includes('[') ? '' : ` ${wsUrl}`}`;
}

/** The page, with its headers: the CSP allows its one style and one script, plus `directives`. */
export function htmlPage(options: { title: string; style: string; body: string; script: string; directives: readonly string[] }): HtmlPage {
  const { title, style, body, script, directives } = options;
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body>
${body}
<script>${script}</script>
</body>
</html>
`;
  const csp = [
    "default-src 'none'",
    `script-src ${sha256Source(script)}`,
    `style-src ${sha256Source(style)}`,
    ...directives,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    html,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': csp,
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Cross-Origin-Resource-Policy': 'same-origin',
    },
  };
}
