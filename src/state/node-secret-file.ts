/**
 * state/node-secret-file — the node secret, shared by every registrar of one
 * node through the data directory, encrypted so that only holders of the
 * node's private key can read it.
 *
 * - The key: HKDF-SHA256 of the node's 32 private-key bytes with the fixed,
 *   versioned info {@link NODE_SECRET_KDF_INFO} (32 bytes, AES-256-GCM). A
 *   second HKDF output (another info) is the file's `key_id`: a reader of
 *   another key tells a foreign file from a corrupt one without trying to
 *   decrypt it, and the id says nothing about the key.
 * - The file (`node_secret.json`, mode 0600, written atomically): versioned
 *   JSON `{format, version, key_id, nonce, ciphertext, tag}`; the header is
 *   the associated data, the plaintext is `{secret, node_id,
 *   organization_id, received_at}`. A fresh random 12-byte nonce per write.
 * - Reads touch regular files only (no symlink is followed, a FIFO never
 *   blocks) and never throw: a missing file is "no secret", anything else
 *   that cannot be used is reported to the caller, which logs it once.
 *
 * The AES key lives in the closure of {@link createNodeSecretFile} only.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { errorCode, errorReason, readRegularFileSync, writeFileAtomicSync } from './atomic-file.js';

/** The HKDF info of the encryption key: changing the scheme means a new version here and in {@link NODE_SECRET_FILE_VERSION}. */
export const NODE_SECRET_KDF_INFO = 'posemesh-node-registration/node-secret/v1';
const KEY_ID_INFO = 'posemesh-node-registration/node-secret/key-id/v1';
/** The file's `format` value. */
export const NODE_SECRET_FILE_FORMAT = 'posemesh-node-secret';
/** The file's `version` value this module writes and reads. */
export const NODE_SECRET_FILE_VERSION = 1;
/** The file's name inside the data directory. */
export const NODE_SECRET_FILE_NAME = 'node_secret.json';

/** The largest file read (ours are a few hundred bytes). */
const MAX_FILE_BYTES = 64 * 1024;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** What the file holds, decrypted. */
export interface SharedNodeSecret {
  secret: string;
  nodeId: string | null;
  organizationId: string | null;
  /** When the registrar that received it stored it (ms since the epoch). */
  receivedAt: number;
}

/**
 * The outcome of a read: `none` (no file), `ok`, or why the file was not
 * used: `read-error` (not a regular file, a symlink, a disk error: `code`),
 * `foreign` (another node key wrote it), `version` (a format this version
 * does not read), `corrupt` (not ours to parse, or it fails authentication).
 */
export type NodeSecretRead =
  | { kind: 'none' }
  | { kind: 'ok'; value: SharedNodeSecret }
  | { kind: 'read-error'; code: string; reason: string }
  | { kind: 'foreign' | 'version' | 'corrupt'; reason: string };

/** The shared secret file of one data directory, for one node key. */
export interface NodeSecretFile {
  /** The file's absolute path. */
  readonly path: string;
  /** Encrypt and write atomically (mode 0600). Throws the `fs` error on a disk fault (never with the secret). */
  write(value: SharedNodeSecret): void;
  /** Read and decrypt; never throws. */
  read(): NodeSecretRead;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function header(keyId: string): { format: string; version: number; key_id: string } {
  return { format: NODE_SECRET_FILE_FORMAT, version: NODE_SECRET_FILE_VERSION, key_id: keyId };
}

/** The associated data: the header, in a fixed order (a file whose header was edited fails authentication). */
function aad(keyId: string): Buffer {
  return Buffer.from(JSON.stringify(header(keyId)), 'utf8');
}

function b64(text: unknown, bytes?: number): Buffer | undefined {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const buf = Buffer.from(text, 'base64');
  if (bytes !== undefined && buf.length !== bytes) return undefined;
  return buf;
}

function parsePlain(buf: Buffer): SharedNodeSecret | undefined {
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(json)) return undefined;
  const { secret, node_id: nodeId, organization_id: organizationId, received_at: receivedAt } = json;
  if (typeof secret !== 'string' || secret.length === 0) return undefined;
  if (nodeId !== null && typeof nodeId !== 'string') return undefined;
  if (organizationId !== null && typeof organizationId !== 'string') return undefined;
  if (typeof receivedAt !== 'number' || !Number.isFinite(receivedAt)) return undefined;
  return { secret, nodeId, organizationId, receivedAt };
}

/**
 * The secret file in `dir` for the node whose private key is `privateKey`
 * (32 bytes). The bytes are used to derive the keys and not kept.
 */
export function createNodeSecretFile(dir: string, privateKey: Uint8Array): NodeSecretFile {
  if (privateKey.length !== 32) throw new RangeError('the node key must be 32 bytes');
  const file = path.resolve(dir, NODE_SECRET_FILE_NAME);
  // Only these two derived values live on, in this closure.
  const aesKey = hkdf(sha256, privateKey, undefined, utf8(NODE_SECRET_KDF_INFO), 32);
  const keyId = Buffer.from(hkdf(sha256, privateKey, undefined, utf8(KEY_ID_INFO), 8)).toString('hex');

  const write = (value: SharedNodeSecret): void => {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', aesKey, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(keyId));
    const plain = Buffer.from(
      JSON.stringify({
        secret: value.secret,
        node_id: value.nodeId,
        organization_id: value.organizationId,
        received_at: value.receivedAt,
      }),
      'utf8',
    );
    const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
    plain.fill(0);
    const text = `${JSON.stringify({
      ...header(keyId),
      nonce: nonce.toString('base64'),
      ciphertext: ciphertext.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
    })}\n`;
    writeFileAtomicSync(file, text, { mode: 0o600 });
  };

  const read = (): NodeSecretRead => {
    let text: string;
    try {
      text = readRegularFileSync(file, MAX_FILE_BYTES).toString('utf8');
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') return { kind: 'none' };
      return { kind: 'read-error', code, reason: errorReason(err) };
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { kind: 'corrupt', reason: 'invalid JSON' };
    }
    if (!isRecord(json) || json.format !== NODE_SECRET_FILE_FORMAT) return { kind: 'corrupt', reason: 'not a node secret file' };
    if (json.version !== NODE_SECRET_FILE_VERSION) {
      return { kind: 'version', reason: `version ${JSON.stringify(json.version)?.slice(0, 20)} is not ${NODE_SECRET_FILE_VERSION}` };
    }
    if (json.key_id !== keyId) return { kind: 'foreign', reason: 'written for another node key' };
    const nonce = b64(json.nonce, NONCE_BYTES);
    const tag = b64(json.tag, TAG_BYTES);
    const ciphertext = b64(json.ciphertext);
    if (nonce === undefined || tag === undefined || ciphertext === undefined) return { kind: 'corrupt', reason: 'invalid nonce, tag or ciphertext' };
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', aesKey, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(keyId));
      decipher.setAuthTag(tag);
      plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      return { kind: 'corrupt', reason: 'does not decrypt (altered, or another key)' };
    }
    const value = parsePlain(plain);
    plain.fill(0);
    return value === undefined ? { kind: 'corrupt', reason: 'invalid content' } : { kind: 'ok', value };
  };

  return Object.freeze({ path: file, write, read });
}

/** What identifies one version of the file at the path (a change of any means "read it again"). */
export function fileSignature(file: string): string {
  try {
    const st = fs.lstatSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch (err) {
    return errorCode(err);
  }
}
