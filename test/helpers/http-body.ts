/**
 * Reading a request's body in the tests' own HTTP servers (the test DDS, the
 * fault DDS, the gated DDS): all of it, as text, and as JSON when it is JSON.
 */
import type { IncomingMessage } from 'node:http';

/** A request body, read to its end. */
export interface ReadBody {
  /** The body as UTF-8 text. */
  rawBody: string;
  /** `rawBody` parsed as JSON, or `undefined` when it is not JSON. */
  body: unknown;
}

/** `text` parsed as JSON, or `undefined` when it does not parse. */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Read `req`'s body to its end. Rejects when the request fails; stays pending
 * when the client goes away before the end (nothing then is recorded).
 */
export function readBody(req: IncomingMessage): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', reject);
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      resolve({ rawBody, body: parseJsonOrUndefined(rawBody) });
    });
  });
}
