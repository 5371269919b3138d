/**
 * The baseline server of bench/idle.ts and bench/routes.ts: bare `node:http`
 * with Node's defaults, no loader, answering the two routes DDS calls as ours
 * does — `GET /health` 200 empty; `POST /internal/v1/registrations` with the
 * same checks (415, 413, 400, 422, 403) and the same 200 `{"ok":true}` —
 * and 404 otherwise. Prints `{"event":"http.listening","url":…}`; exits 0 on SIGTERM.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';

const BODY_LIMIT_BYTES = 64 * 1024;
const MAX_SECRET_BYTES = 4096;
/** The node secret, held in memory as ours holds it. */
const held = { secret: '' };

function text(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function callback(req, res) {
  if ((req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() !== 'application/json') {
    req.resume();
    return text(res, 415, 'expected Content-Type: application/json');
  }
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= BODY_LIMIT_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > BODY_LIMIT_BYTES) return text(res, 413, 'body too large');
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return text(res, 400, 'invalid JSON');
    }
    const { id, secret } = typeof body === 'object' && body !== null ? body : {};
    if (typeof id !== 'string' || id.trim() === '') return text(res, 422, 'missing id');
    if (typeof secret !== 'string' || secret.trim() === '') return text(res, 422, 'missing secret');
    if (Buffer.byteLength(secret, 'utf8') > MAX_SECRET_BYTES) return text(res, 403, 'secret too large');
    held.secret = secret;
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': 11, 'cache-control': 'no-store' });
    res.end('{"ok":true}');
  });
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0];
  if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.writeHead(200, { 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
  } else if (path === '/internal/v1/registrations' && req.method === 'POST') callback(req, res);
  else {
    req.resume();
    text(res, 404, 'not found');
  }
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ event: 'http.listening', url: `http://127.0.0.1:${server.address().port}` }));
});
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
