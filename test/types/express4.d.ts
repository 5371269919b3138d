// express 4, installed under the alias `express4` to test the routes inside an express 4 app:
// only what test/unit/http-embed.test.ts uses of it (its request handlers are node:http's).
declare module 'express4' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  type Next = (err?: unknown) => void;
  type Handler = (req: IncomingMessage, res: ServerResponse, next?: Next) => void;
  interface App extends Handler {
    use(...handlers: Handler[]): App;
  }
  interface Express4 {
    (): App;
    json(options?: Record<string, unknown>): Handler;
    text(options?: Record<string, unknown>): Handler;
    raw(options?: Record<string, unknown>): Handler;
    urlencoded(options?: Record<string, unknown>): Handler;
  }
  const express: Express4;
  export default express;
}
