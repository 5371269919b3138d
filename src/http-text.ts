/**
 * http-text — the short plain-text answers of the DDS routes (./http.ts) and
 * the inspector relay (./inspector-relay.ts), and the clipping of untrusted
 * text copied into them or into log lines.
 *
 * @module
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/**
 * Answer `status` with `text` as `text/plain; charset=utf-8`, never cached
 * (it describes this request) and never sniffed as another type. `headers`
 * (say, `Allow`) come first. The headers in express's order, so that the
 * DDS routes' answers are what `res.type('text/plain').send(text)` gave.
 */
export function sendText(res: ServerResponse, status: number, text: string, headers: OutgoingHttpHeaders = {}): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** `text`, cut to `max` UTF-16 units with `…` appended when longer. */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
