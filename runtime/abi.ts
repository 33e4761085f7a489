/**
 * The guest ABI's core numbers: errno values, poll bits, epoll and fd ctl commands, log levels.
 * Each family keeps its own command numbers in its protocol.ts.
 *
 * `guests/include/spear_abi.h` is generated from these and the families' numbers through the
 * registry (`deno task gen-header`), and a test fails when they drift apart, so the C SDK and
 * the host can never disagree on a number.
 */

/** Linux errno numbers, returned negated by every hostcall (SPEAR's "virtual errno"). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  EPIPE: 32,
  ENOSYS: 38,
  EMSGSIZE: 90,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ECONNRESET: 104,
  EISCONN: 106,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
} as const;
export type ErrnoName = keyof typeof Errno;

/** Poll bits used by spear_epoll_* and readiness masks. */
export const Poll = {
  EPOLLIN: 0x001,
  EPOLLOUT: 0x004,
  EPOLLERR: 0x008,
  EPOLLHUP: 0x010,
} as const;
export const POLL_ALL = Poll.EPOLLIN | Poll.EPOLLOUT | Poll.EPOLLERR | Poll.EPOLLHUP;

export const EpollOp = { ADD: 1, MOD: 2, DEL: 3 } as const;

/** fd flags (spear_fd_ctl SET_FLAGS/GET_FLAGS). */
export const FdFlag = { O_NONBLOCK: 0x1 } as const;

export const FdCtl = {
  SET_FLAGS: 1,
  GET_FLAGS: 2,
  GET_KIND: 3,
  GET_STATUS: 4,
  GET_METRICS: 5,
} as const;

export const LogLevel = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 } as const;

/** fd kind names as reported by spear_fd_ctl GET_KIND (SPEAR's spelling); each family lists its own. */
export type FdKind = string;

/** wasm value types of import signatures. */
export type WasmType = "i32" | "i64" | "f32" | "f64";
/** A wasm value as the host sees it: i64 as bigint, the others as number. */
export type WasmValue = number | bigint;

/** First fd number handed out in an instance; fds are never reused. */
export const FIRST_FD = 1000;
/** Size of one spear_epoll_wait record: {fd i32, events i32} little-endian. */
export const EPOLL_RECORD_BYTES = 8;
/** Longest log message a guest may pass to `log` (SPEAR's limit). */
export const MAX_LOG_BYTES = 16384;

/** Error thrown inside a hostcall to return `-errno` to the guest. */
export class HostcallError extends Error {
  /** `rc` overrides the value reported elsewhere (e.g. a tool's own return code). */
  constructor(readonly errno: ErrnoName, message?: string, readonly rc?: number) {
    // A -errno is an answer, not a bug: no stack trace (capturing one cost more than the
    // hostcall itself in loops that poll for -EAGAIN).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? errno);
    Error.stackTraceLimit = limit;
  }
  /** The negative value the guest sees. */
  get code(): number {
    return -Errno[this.errno];
  }
}

const plainErrors = new Map<ErrnoName, HostcallError>();

/**
 * Shorthand: `throw fail("EBADF")`. Without a message the error is one shared instance per errno:
 * it carries nothing else, and a guest polling for -EAGAIN then makes no garbage.
 */
export function fail(errno: ErrnoName, message?: string): HostcallError {
  if (message !== undefined) return new HostcallError(errno, message);
  let error = plainErrors.get(errno);
  if (!error) plainErrors.set(errno, error = Object.freeze(new HostcallError(errno)));
  return error;
}

/** Names of the poll bits set in `mask`, in SPEAR's order. */
export function pollNames(mask: number): string[] {
  return (Object.keys(Poll) as (keyof typeof Poll)[]).filter((n) => (mask & Poll[n]) !== 0);
}
