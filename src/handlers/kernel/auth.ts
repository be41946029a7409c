// Sessions: password hashing, access tokens and devices, and resolving a token to its requester.

import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { Errors } from '../../errors.js';
import type { Queryable } from '../../storage/database.js';
import { isTransientDatabaseError } from '../../storage/faults.js';
import type { UsersStore } from '../../storage/users-store.js';
import type { ReplicationBus } from '../../streams/bus.js';
import { LruCache } from '../../util/lru.js';
import type { Requester } from './requester.js';

// scrypt with N=2^15 costs ~50 ms and 32 MiB per hash: slow for guessing, fine for logins.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, keyLength: 32, maxmem: 64 * 1024 * 1024 };

function scryptAsync(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>` */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: SCRYPT.maxmem });
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  if (!stored) return false;
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: SCRYPT.maxmem,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * `syt_<base64url localpart>_<random>`, as Synapse's tokens: the prefix lets a router keep a
 * user's /sync on one worker without a database lookup.
 */
export function generateAccessToken(localpart: string): string {
  return `syt_${Buffer.from(localpart).toString('base64url')}_${randomBytes(20).toString('base64url')}`;
}

export function generateDeviceId(): string {
  // Synapse uses 10 upper-case letters; clients display it.
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return Array.from(randomBytes(10), (b) => letters[b % 26]).join('');
}

export function localpartOf(userId: string): string {
  return userId.slice(1, userId.indexOf(':'));
}

interface CachedOwner {
  requester: Requester;
  deactivated: boolean;
}

interface CachedLookup {
  /** The token's owner, or null for a token the database does not know. */
  owner: CachedOwner | null;
  /** When it was read from the database. */
  readAt: number;
}

/**
 * How long a token lookup is trusted without asking the database again. Deleted tokens are
 * dropped from every process's cache at once (INVALIDATE_TOKENS on the bus); this bounds how long
 * one stays usable on another process if that command is lost (it is not sent while Redis is down).
 */
const TOKEN_CACHE_TTL_MS = 30_000;

export class AuthHandler {
  /** Token hash → token of every cached known token, for invalidation by hash (the database only
   * knows hashes); kept in step with the cache through its eviction callback. */
  private readonly tokenOfHash = new Map<string, string>();
  private readonly tokenCache = new LruCache<string, CachedLookup>(50_000, (_token, lookup) => {
    if (lookup.owner) this.tokenOfHash.delete(lookup.owner.requester.tokenHash);
  });

  constructor(
    private readonly users: UsersStore,
    private readonly now: () => number = Date.now,
    /** Carries token deletions to the other processes (and theirs to this one). */
    private readonly bus?: ReplicationBus,
  ) {
    bus?.onCommand((command) => {
      if (command.name === 'INVALIDATE_TOKENS') this.forgetTokens(command.tokenHashes);
    });
  }

  /** Creates (or reuses) a device and issues a new access token for it. */
  async createSession(
    userId: string,
    options: { deviceId?: string; displayName?: string | null } = {},
    tx?: Queryable,
  ): Promise<{ accessToken: string; deviceId: string }> {
    const deviceId = options.deviceId ?? generateDeviceId();
    const accessToken = generateAccessToken(localpartOf(userId));
    const now = this.now();
    await this.users.upsertDevice(userId, deviceId, options.displayName ?? null, now, tx);
    await this.users.addAccessToken(hashToken(accessToken), userId, deviceId, now, tx);
    return { accessToken, deviceId };
  }

  /** The requester for a token, or a 401 Matrix error. */
  async authenticate(token: string): Promise<Requester> {
    // Keyed by the token itself: hashing it on every request costs more than the lookup.
    const now = this.now();
    let cached = this.tokenCache.get(token);
    if (cached === undefined || now - cached.readAt > TOKEN_CACHE_TTL_MS) {
      const tokenHash = hashToken(token);
      let owner: Awaited<ReturnType<UsersStore['getTokenOwner']>>;
      try {
        owner = await this.users.getTokenOwner(tokenHash);
      } catch (err) {
        // The re-read is a backstop for a lost INVALIDATE_TOKENS; while the database cannot
        // answer, what was read last stands (deletions need the database too).
        if (cached === undefined || !isTransientDatabaseError(err)) throw err;
        if (cached.owner === null || cached.owner.deactivated) throw Errors.unknownToken();
        return cached.owner.requester;
      }
      cached = {
        owner: owner
          ? {
              requester: { userId: owner.user_id, deviceId: owner.device_id, isGuest: owner.is_guest === 1, tokenHash },
              deactivated: owner.deactivated === 1,
            }
          : null,
        readAt: now,
      };
      this.tokenCache.set(token, cached);
      if (cached.owner) this.tokenOfHash.set(tokenHash, token);
    }
    if (cached.owner === null || cached.owner.deactivated) throw Errors.unknownToken();
    return cached.owner.requester;
  }

  /** Forgets tokens that were deleted (logout, device deletion, password change), in every process. */
  invalidateTokens(tokenHashes: Iterable<string>): void {
    const hashes = [...tokenHashes];
    this.forgetTokens(hashes);
    if (hashes.length > 0) this.bus?.send({ name: 'INVALIDATE_TOKENS', tokenHashes: hashes });
  }

  private forgetTokens(tokenHashes: Iterable<string>): void {
    for (const hash of tokenHashes) {
      const token = this.tokenOfHash.get(hash);
      if (token !== undefined) this.tokenCache.delete(token);
      this.tokenOfHash.delete(hash);
    }
  }

  /** Forgets every cached token (e.g. a user was deactivated). */
  invalidateAll(): void {
    this.tokenCache.clear();
    this.tokenOfHash.clear();
  }
}
