/**
 * The live view (`/` on the relay): the registrar's statechart, timers,
 * counters and events in a browser, from the relay's WebSocket alone — no
 * internet, no CDN, no font: everything is in this one page (its script is
 * live-page-script.ts). Not to be confused with `dev`'s terminal view
 * (src/cli/live-view.ts). The Stately inspector is one click away (`/stately`).
 */
import { TIMERS_MESSAGE_TYPE } from '../inspect-stream.js';
import { connectSource, htmlPage, scriptValue, type HtmlPage } from './html.js';
import { LIVE_PAGE_SCRIPT } from './live-page-script.js';

/** Where the relay serves the Stately bridge page, linked from the live view. */
export const STATELY_PAGE_PATH = '/stately';

const STYLE = `
:root{--fg:#1d2330;--muted:#5d6675;--line:#d5dae3;--bg:#f5f7fa;--panel:#fff;--on:#1b7f3b;--on-bg:#e3f4e8;--left:#f2b705;--bad:#b3261e;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
body{margin:0;padding:16px 20px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px;margin-bottom:12px}
h1{font-size:18px;margin:0}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:0 0 8px}
.status{font-size:12px;padding:1px 8px;border-radius:10px;background:var(--line)}
.status.live{background:var(--on);color:#fff}
.status.disconnected{background:var(--bad);color:#fff}
.current{font-weight:600;font-size:15px}
header a{margin-left:auto;color:#1a56b0}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(260px,2fr);gap:12px}
section{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 12px;min-width:0}
.side{display:flex;flex-direction:column;gap:12px;min-width:0}
.chart{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
.state{border:1px solid var(--line);border-radius:6px;background:var(--panel);padding:2px 6px 6px;min-width:90px}
.state.parallel>.children{flex-wrap:nowrap}
.state.parallel>.children>.state{border-style:dashed}
.state.final{border-width:2px}
.state>.name{font-weight:600;padding:1px 4px;border-radius:4px;margin:0 -2px}
.state>.timer{font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums}
.state>.timer:empty{display:none}
.children{display:flex;flex-wrap:wrap;gap:6px;margin-top:4px}
.state.active{border-color:var(--on);background:var(--on-bg)}
.state.active>.name{background:var(--on);color:#fff}
.state.recent>.name{animation:left 3s ease-out}
@keyframes left{from{background:var(--left);color:var(--fg)}to{background:transparent}}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:2px 6px 2px 0;font-size:13px;vertical-align:top}
th{color:var(--muted);font-weight:500}
td.remaining{font-variant-numeric:tabular-nums;font-weight:600;white-space:nowrap}
progress{width:70px}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:0}
dt{color:var(--muted)}
dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.failure .head{font-weight:600;color:var(--bad)}
.failure .message{font-size:13px;overflow-wrap:anywhere}
.empty{color:var(--muted);margin:0}
.legend{color:var(--muted);font-size:12px;margin:10px 0 0}
.key{display:inline-block;padding:0 6px;border-radius:4px;margin-right:6px}
.key.on{background:var(--on);color:#fff}
.key.left{background:var(--left)}
.lists{grid-column:1/-1;display:grid;grid-template-columns:minmax(0,1fr) minmax(0,2fr);gap:12px}
ol{list-style:none;margin:0;padding:0;max-height:320px;overflow:auto}
li{display:flex;gap:8px;font-size:13px;padding:1px 0;border-bottom:1px solid #eef0f4}
time{color:var(--muted);font-variant-numeric:tabular-nums;white-space:nowrap}
li .what{font-weight:600;overflow-wrap:anywhere}
#events .what{white-space:nowrap}
.machine{text-transform:none;letter-spacing:0;font-weight:400}
li .detail{color:var(--muted);overflow-wrap:anywhere}
`;

const BODY = `<header>
<h1>posemesh node registration · live view</h1>
<span id="status" class="status">connecting…</span>
<span id="current" class="current">–</span>
<a id="stately" href="${STATELY_PAGE_PATH}" rel="noopener">Open in the Stately inspector</a>
</header>
<main>
<section><h2>Statechart <span id="machine" class="machine"></span></h2><div id="chart" class="chart"><p class="empty">waiting for the registrar…</p></div>
<p class="legend"><span class="key on">active</span> <span class="key left">just left (fades in 3 s)</span> a running timer is shown in the state that armed it</p></section>
<div class="side">
<section><h2>Timers</h2><table id="timers"><thead><tr><th>Delay</th><th>State</th><th>Left</th><th>Of</th><th></th></tr></thead><tbody></tbody></table><p id="no-timers" class="empty">none running</p></section>
<section><h2>Counters</h2><dl id="counters"></dl></section>
<section><h2>Last failure</h2><div id="failure" class="empty">none</div></section>
</div>
<div class="lists">
<section><h2>States</h2><ol id="trail"></ol></section>
<section><h2>Events</h2><ol id="events"></ol></section>
</div>
</main>`;

/** The live view for the relay at `wsUrl`. */
export function livePage(wsUrl: string): HtmlPage {
  const config = { wsUrl, timersType: TIMERS_MESSAGE_TYPE };
  const script = `(() => {\n'use strict';\nconst CONFIG = ${scriptValue(config)};\n${LIVE_PAGE_SCRIPT}\n})();\n`;
  return htmlPage({ title: 'posemesh registrar — live view', style: STYLE, body: BODY, script, directives: [connectSource(wsUrl)] });
}
