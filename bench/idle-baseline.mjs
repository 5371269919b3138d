/**
 * Baseline of the idle-cost benchmark (bench/idle.ts): a bare `node:http`
 * server with Node's defaults that answers `GET /health` (and `HEAD`) 200
 * with an empty body and everything else 404, and does nothing else. It
 * listens on 127.0.0.1 and a free port, prints one JSON line
 * `{"event":"http.listening","url":…}`, and exits 0 on SIGTERM or SIGINT.
 */
import http from 'node:http';

const server = http.createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0];
  if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.writeHead(200, { 'cache-control': 'no-store' });
    res.end();
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({ event: 'http.listening', url: `http://127.0.0.1:${port}` }));
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
