/**
 * The skills' memory: a key-value store in SQLite (`node:sqlite`, built into Deno), one
 * namespace per skill. Used by the cis driver (main thread) and by `spear skill memory`.
 *
 * - Several processes may use one file at once: WAL journal (readers never block the writer),
 *   a busy timeout (a writer waits for another instead of failing), and every write in a
 *   `BEGIN IMMEDIATE` transaction that also keeps the namespace's byte total, so quota checks
 *   are exact under concurrency.
 * - Caps: a value larger than the namespace's `maxValueBytes`, or a write that would take the
 *   namespace's keys and values past `maxTotalBytes`, is refused (StoreError ENOSPC) and
 *   changes nothing.
 * - Keys are non-empty UTF-8 text of at most MAX_KEY_BYTES; values are bytes.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { MAX_KEY_BYTES } from "./protocol.ts";
import { utf8Length } from "../../protocol/bytes.ts";

export interface NamespaceLimits {
  maxValueBytes: number;
  maxTotalBytes: number;
}

/** A refused store operation, with the errno the host function returns. */
export class StoreError extends Error {
  constructor(readonly errno: "ENOSPC" | "EINVAL" | "EIO", message: string) {
    super(message);
  }
}

/** How long a writer waits for another process's transaction before giving up (EIO). */
export const BUSY_TIMEOUT_MS = 10_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS namespaces (
  namespace TEXT PRIMARY KEY,
  total_bytes INTEGER NOT NULL
) WITHOUT ROWID;
`;

/**
 * Runs `statement`, again while SQLite says the database is locked, up to the busy timeout.
 * Switching a new file to WAL while another process does the same can fail at once with
 * "database is locked" without calling the busy handler (seen with several processes opening
 * one store together).
 */
function whileLocked(statement: () => void): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      return statement();
    } catch (e) {
      if (!/database is locked|busy/i.test(String(e)) || Date.now() > deadline) throw e;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
}

/** Validates a key: EINVAL naming the problem. */
export function checkKey(key: string): number {
  const bytes = utf8Length(key);
  if (bytes === 0) throw new StoreError("EINVAL", "the key is empty");
  if (bytes > MAX_KEY_BYTES) {
    throw new StoreError("EINVAL", `the key is ${bytes} bytes, over ${MAX_KEY_BYTES}`);
  }
  return bytes;
}

export interface KeyInfo {
  key: string;
  bytes: number;
}

export class MemoryStore {
  private readonly getStmt: StatementSync;
  private readonly sizeStmt: StatementSync;
  private readonly totalStmt: StatementSync;
  private readonly upsertStmt: StatementSync;
  private readonly deleteStmt: StatementSync;
  private readonly setTotalStmt: StatementSync;
  private readonly listStmt: StatementSync;
  private closed = false;

  private constructor(readonly path: string, private readonly db: DatabaseSync) {
    this.getStmt = db.prepare("SELECT value FROM kv WHERE namespace = ? AND key = ?");
    this.sizeStmt = db.prepare("SELECT length(value) AS n FROM kv WHERE namespace = ? AND key = ?");
    this.totalStmt = db.prepare("SELECT total_bytes AS n FROM namespaces WHERE namespace = ?");
    this.upsertStmt = db.prepare(
      "INSERT INTO kv (namespace, key, value, updated_ms) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
    );
    this.deleteStmt = db.prepare("DELETE FROM kv WHERE namespace = ? AND key = ?");
    this.setTotalStmt = db.prepare(
      "INSERT INTO namespaces (namespace, total_bytes) VALUES (?, ?) " +
        "ON CONFLICT (namespace) DO UPDATE SET total_bytes = excluded.total_bytes",
    );
    this.listStmt = db.prepare(
      "SELECT key, length(value) AS bytes FROM kv WHERE namespace = ? ORDER BY key",
    );
  }

  /** Opens (creating the file and its directory if needed) the store at `path`. */
  static open(path: string): MemoryStore {
    const slash = path.lastIndexOf("/");
    if (slash > 0) Deno.mkdirSync(path.slice(0, slash), { recursive: true });
    const db = new DatabaseSync(path);
    try {
      // The busy timeout first: creating tables waits for other processes too.
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      whileLocked(() => db.exec("PRAGMA journal_mode = WAL"));
      db.exec("PRAGMA synchronous = NORMAL");
      whileLocked(() => db.exec(SCHEMA));
    } catch (e) {
      db.close();
      throw e;
    }
    return new MemoryStore(path, db);
  }

  get(namespace: string, key: string): Uint8Array | undefined {
    const row = this.getStmt.get(namespace, key) as { value: Uint8Array } | undefined;
    return row?.value;
  }

  /** Bytes the namespace's keys and values take. */
  usage(namespace: string): number {
    return Number((this.totalStmt.get(namespace) as { n: number } | undefined)?.n ?? 0);
  }

  /** Sets a value; StoreError ENOSPC past the caps (nothing changes then). */
  set(namespace: string, key: string, value: Uint8Array, limits: NamespaceLimits): void {
    const keyBytes = checkKey(key);
    if (value.length > limits.maxValueBytes) {
      throw new StoreError(
        "ENOSPC",
        `a value of ${value.length} bytes is over the skill's max_value_bytes (${limits.maxValueBytes})`,
      );
    }
    this.transaction(() => {
      const old = this.sizeStmt.get(namespace, key) as { n: number } | undefined;
      const total = this.usage(namespace) - (old ? keyBytes + Number(old.n) : 0) + keyBytes + value.length;
      if (total > limits.maxTotalBytes) {
        throw new StoreError(
          "ENOSPC",
          `namespace "${namespace}" would hold ${total} bytes, over the skill's max_total_bytes (${limits.maxTotalBytes})`,
        );
      }
      this.upsertStmt.run(namespace, key, value, Date.now());
      this.setTotalStmt.run(namespace, total);
    });
  }

  /** Deletes a key; false if it was not there. */
  delete(namespace: string, key: string): boolean {
    const keyBytes = checkKey(key);
    return this.transaction(() => {
      const old = this.sizeStmt.get(namespace, key) as { n: number } | undefined;
      if (!old) return false;
      this.deleteStmt.run(namespace, key);
      this.setTotalStmt.run(namespace, Math.max(0, this.usage(namespace) - keyBytes - Number(old.n)));
      return true;
    });
  }

  /** Keys of a namespace with their value sizes, in key order. */
  list(namespace: string): KeyInfo[] {
    return (this.listStmt.all(namespace) as { key: string; bytes: number }[]).map((r) => ({
      key: r.key,
      bytes: Number(r.bytes),
    }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /** Runs `fn` in a write transaction taken at once (BEGIN IMMEDIATE), rolled back if it throws. */
  private transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec("COMMIT");
      return result;
    } catch (e) {
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
      throw e;
    }
  }
}
