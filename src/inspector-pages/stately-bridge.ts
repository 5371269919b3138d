/**
 * The Stately bridge page (`/stately` on the relay): the behaviour of
 * `@statelyai/inspect/server`'s page — forward every WebSocket message to
 * the Stately inspector in an iframe by `postMessage`, buffering until it
 * says `@statelyai.connected` — pointed at the relay, posting to the
 * inspector's origin only. Needs stately.ai (or `inspectorUrl`) to be
 * reachable; the live view (live-page.ts) does not.
 */
import { connectSource, escapeHtml, htmlPage, scriptValue, type HtmlPage } from './html.js';

/** How many messages the bridge page holds while the inspector frame loads. */
const PAGE_PENDING_MAX = 1000;

/** The bridge page for the relay at `wsUrl`, framing `inspectorUrl`. */
export function statelyBridgePage(wsUrl: string, inspectorUrl: URL): HtmlPage {
  const style = 'html,body{margin:0;padding:0;height:100%}iframe{display:block;width:100%;height:100%;border:0}';
  // Only the inspector's own messages (`@xstate.*`): the stream also carries the live view's.
  const script = `
(() => {
  const inspectorOrigin = ${scriptValue(inspectorUrl.origin)};
  const iframe = document.getElementById('inspector');
  const pending = [];
  let connected = false;
  const post = (data) => iframe.contentWindow.postMessage(data, inspectorOrigin);
  window.addEventListener('message', (e) => {
    if (e.origin !== inspectorOrigin) return;
    if (e.data && e.data.type === '@statelyai.connected') {
      connected = true;
      pending.splice(0).forEach(post);
    }
  });
  const ws = new WebSocket(${scriptValue(wsUrl)});
  ws.onmessage = (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch { return; }
    if (!data || typeof data.type !== 'string' || !data.type.startsWith('@xstate.')) return;
    if (connected) post(data);
    else if (pending.push(data) > ${PAGE_PENDING_MAX}) pending.shift();
  };
})();
`;
  return htmlPage({
    title: 'Stately Inspector',
    style,
    body: `<iframe id="inspector" title="Stately Inspector" src="${escapeHtml(inspectorUrl.href)}"></iframe>`,
    script,
    directives: [`frame-src ${inspectorUrl.origin}`, connectSource(wsUrl)],
  });
}
