// bearer.ts: call another posemesh service as the node (protocol siwe).
import { accessToken, reportUnauthorized, type Registrar } from 'posemesh-node-registration';

/** `fetch` with the node's access token; on a 401, report it and try once more with a fresh token. */
export async function fetchAsNode(registrar: Registrar, url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    // Waits for the registration and the sign-in; rejects with AccessTokenError (ESTOPPED, EABORTED, …).
    const token = await accessToken(registrar, { signal: AbortSignal.timeout(30_000) });
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${token.expose()}`);
    const response = await fetch(url, { ...init, headers });
    if (response.status !== 401 || attempt === 2) return response;
    // The service refused this token: unless a refresh replaced it already, the session signs in again at once.
    reportUnauthorized(registrar, token);
  }
}
