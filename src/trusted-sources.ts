/**
 * trusted-sources — who counts as DDS for the callback routes
 * (setting `ddsTrustedSources`), and which address a request comes from when it
 * passed proxies (setting `trustProxy`, express's `trust proxy` semantics).
 *
 * Off by default (the crate's behaviour: anyone who reaches the routes is
 * DDS). On, a callback from elsewhere is refused and a probe from elsewhere
 * records nothing, so a stranger can neither hand the node a secret nor keep
 * a node DDS stopped probing "registered".
 *
 * `X-Forwarded-For` is read only as far as the setting `trustProxy` says: from the
 * socket's address leftwards, each hop that is a trusted proxy passes the
 * question on to the address it names; the first untrusted one is the client
 * (proxy-addr's algorithm, which express uses). With the setting `trustProxy` off the
 * header is ignored: anyone can write it.
 */
import { BlockList, isIP } from 'node:net';

/** The setting `trustProxy`: off, every hop (`true`), the nearest `n` hops, or the proxies' addresses/CIDRs/names. */
export type TrustProxy = boolean | number | readonly string[];

/** Names express accepts for address ranges (`loopback`, `linklocal`, `uniquelocal`). */
const NAMED_RANGES: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/** An address without IPv4-mapped IPv6 form (`::ffff:10.0.0.1` → `10.0.0.1`), or `undefined` when not an IP. */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const a = address.trim().replace(/^\[(.*)\]$/, '$1');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  const plain = mapped?.[1] ?? a;
  return isIP(plain) === 0 ? undefined : plain;
}

/**
 * Check one item of a CIDR list (`10.0.0.0/8`, `2001:db8::/32`, a bare
 * address; for proxies also `loopback`, `linklocal`, `uniquelocal`).
 * @returns the reason it is not one, or `null` when it is
 */
export function cidrProblem(item: string, { names = false } = {}): string | null {
  if (names && Object.hasOwn(NAMED_RANGES, item)) return null;
  const [address, prefix, ...rest] = item.split('/');
  if (rest.length > 0 || address === undefined) return 'not an address or CIDR range';
  const family = isIP(address);
  if (family === 0) return 'not an address or CIDR range';
  if (prefix === undefined) return null;
  const bits = Number(prefix);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || bits > max) return `prefix length must be 0…${max}`;
  return null;
}

/** A set of addresses and CIDR ranges (and, with `names`, express's range names), matched by node:net's BlockList. */
export interface AddressSet {
  has(address: string | undefined): boolean;
}

/**
 * Compile a validated list (see {@link cidrProblem}).
 * @throws {RangeError} for an item that is not an address, a range or (with `names`) a range name
 */
export function addressSet(items: readonly string[], { names = false } = {}): AddressSet {
  const list = new BlockList();
  const add = (item: string): void => {
    const problem = cidrProblem(item, { names });
    if (problem !== null) throw new RangeError(`${JSON.stringify(item)}: ${problem}`);
    const [address = '', prefix] = item.split('/');
    const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  };
  for (const item of items) for (const one of names && Object.hasOwn(NAMED_RANGES, item) ? (NAMED_RANGES[item] ?? []) : [item]) add(one);
  return {
    has(address) {
      const a = normalizeAddress(address);
      if (a === undefined) return false;
      return list.check(a, isIP(a) === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** Whether hop `i` (0 = the socket's peer) at `address` is a proxy to look past. */
type TrustFn = (address: string, hop: number) => boolean;

function compileTrust(trust: TrustProxy): TrustFn {
  if (trust === true) return () => true;
  if (trust === false) return () => false;
  if (typeof trust === 'number') return (_a, hop) => hop < trust;
  const set = addressSet(trust, { names: true });
  return (address) => set.has(address);
}

/** What a request offers to tell where it came from. */
export interface RequestOrigin {
  socket: { remoteAddress?: string | undefined };
  headers: Record<string, string | string[] | undefined>;
}

/**
 * The client's address by `trust` (express's `trust proxy`): the socket's
 * peer, or — past each trusted proxy — the address the proxy names in
 * `X-Forwarded-For` (the right-most first). `undefined` when unknown.
 */
export function clientAddress(req: RequestOrigin, trust: TrustFn): string | undefined {
  const peer = normalizeAddress(req.socket.remoteAddress);
  if (peer === undefined) return undefined;
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .reverse();
  let address = peer;
  for (let hop = 0; hop < forwarded.length; hop++) {
    if (!trust(address, hop)) return address;
    const next = normalizeAddress(forwarded[hop]);
    if (next === undefined) return address; // a hop that names no address: stop at the last one known
    address = next;
  }
  return address;
}

/** Who counts as DDS: `undefined` (everyone, the crate's behaviour) or the addresses/ranges given. */
export interface SourcePolicy {
  /** Whether the request comes from a trusted source (always, when no list is set). */
  trusted(req: RequestOrigin): boolean;
  /** The client's address as the policy sees it (for a log line). */
  address(req: RequestOrigin): string | undefined;
}

/** Build the source policy of the routes. @throws {RangeError} for an invalid list */
export function sourcePolicy(trustedSources: readonly string[] | undefined, trustProxy: TrustProxy = false): SourcePolicy {
  const trust = compileTrust(trustProxy);
  const set = trustedSources === undefined || trustedSources.length === 0 ? undefined : addressSet(trustedSources);
  return {
    trusted: (req) => set === undefined || set.has(clientAddress(req, trust)),
    address: (req) => clientAddress(req, trust),
  };
}
