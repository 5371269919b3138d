// The cold-start baseline (bench/cold-start.ts): a bare Node process that
// sends one POST to DDS and prints one JSON line when the answer has been
// read. CommonJS and node:http only — the least a Node process can do.
//   node bench/cold-start-baseline.cjs <url>
const http = require('node:http');

const request = http.request(process.argv[2], { method: 'POST', headers: { 'content-type': 'application/json' } }, (response) => {
  response.resume();
  response.on('end', () => process.stdout.write(`${JSON.stringify({ event: 'baseline.answered', status: response.statusCode })}\n`));
});
request.on('error', (error) => {
  process.stderr.write(`baseline: ${error.message}\n`);
  process.exitCode = 1;
});
request.end('{"baseline":true}');
