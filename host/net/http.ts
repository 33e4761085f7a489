/**
 * Outbound HTTP for drivers, on the main thread: every hop of a request goes through the
 * network policy (host/net/policy.ts) — the first URL and each redirect target alike — and a
 * body is read chunk by chunk, capped, and charged to the guest's host budget while it is
 * held. Used by the chat backend (families/cchat/backends/openai.ts) and the skills' HTTP
 * host function (families/cis/driver.ts), so both check the same way.
 */
import type { NetPolicy, NetScheme } from "./policy.ts";

/** What a body may cost while it is read (protocol/budget.ts HostBudget). */
export interface BodyBudget {
  tryCharge(bytes: number): boolean;
  release(bytes: number): void;
}

/** The URL's port, with the scheme's default filled in. */
export function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === "https:" || url.protocol === "wss:" ? 443 : 80;
}

/** `host:port` of a URL, with the scheme's default port filled in. */
export function hostPortOf(url: URL): string {
  return `${url.hostname}:${portOf(url)}`;
}

/** Settles with `p`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Reads a body chunk by chunk, charging the guest's budget as it grows (released when the
 * read ends: the caller charges what it keeps). Past `max` bytes, or past the budget, the
 * read stops and the rest of the body is not downloaded.
 */
export async function readBodyBytes(
  res: Response,
  max: number,
  budget?: BodyBudget,
): Promise<{ bytes: Uint8Array } | { error: string; tooLarge?: true }> {
  // With a length announced for an unencoded body (a compressed one is decoded by fetch, so its
  // length says nothing of the bytes) the body is charged up front and read in one go: the
  // common case costs one read instead of a loop over chunks.
  const announced = Number(res.headers.get("content-length") ?? NaN);
  const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
  if (!encoded && Number.isSafeInteger(announced) && announced >= 0) {
    if (announced > max) {
      await res.body?.cancel();
      return {
        error: `response body of ${announced} bytes exceeds the host limit of ${max} bytes`,
        tooLarge: true,
      };
    }
    if (budget && !budget.tryCharge(announced)) {
      await res.body?.cancel();
      return { error: `response body of ${announced} bytes is over the guest's host budget` };
    }
    try {
      return { bytes: await res.bytes() }; // fetch holds the body to its announced length
    } finally {
      budget?.release(announced);
    }
  }
  const reader = res.body?.getReader();
  if (!reader) return { bytes: new Uint8Array(0) };
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (total + value.length > max) {
        await reader.cancel();
        return {
          error: `response body of more than ${max} bytes exceeds the host limit of ${max} bytes`,
          tooLarge: true,
        };
      }
      if (budget && !budget.tryCharge(value.length)) {
        await reader.cancel();
        return {
          error: `response body of more than ${total + value.length} bytes is over the guest's host budget`,
        };
      }
      total += value.length;
      chunks.push(value);
    }
    const whole = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      whole.set(c, at);
      at += c.length;
    }
    return { bytes: whole };
  } finally {
    budget?.release(total);
  }
}

const utf8 = new TextDecoder();

/** As readBodyBytes, decoded as UTF-8 (lossy). */
export async function readBodyText(
  res: Response,
  max: number,
  budget?: BodyBudget,
): Promise<{ text: string } | { error: string }> {
  const read = await readBodyBytes(res, max, budget);
  return "error" in read ? { error: read.error } : { text: utf8.decode(read.bytes) };
}

/** Redirect statuses a browser follows. */
export const REDIRECT_STATUSES: readonly number[] = [301, 302, 303, 307, 308];

export interface CheckedFetchOptions {
  method: string;
  headers?: Record<string, string>;
  /** Sent on the first hop, and on hops that keep the method (307, 308). */
  body?: string | Uint8Array<ArrayBuffer>;
  /** Every hop must pass it; unchecked when undefined. */
  policy?: NetPolicy;
  signal?: AbortSignal;
  /** Statuses followed as redirects (default REDIRECT_STATUSES); others end the chain. */
  follow?: readonly number[];
  /** Longest chain followed; the response past it is returned as it is (default 10). */
  maxRedirects?: number;
  /** Refuses a hop with a reason (e.g. a credentialed request leaving its origin). */
  refuseRedirect?(from: URL, to: URL): string | undefined;
}

export type CheckedFetchResult =
  | { ok: true; response: Response; url: URL; redirects: number }
  | { ok: false; code: "net_denied" | "invalid_redirect"; message: string; status?: number };

/**
 * `fetch` with the network policy on every hop and redirects followed by hand: the policy is
 * checked before each connection (http and https only), a redirect's target is checked like
 * the first URL, 303 (and 301/302 after a POST) continue as GET without a body, as browsers
 * do. Rejects only as fetch does (network failures, the signal); policy refusals, refused
 * hops and bad Location headers come back as `{ok: false}`.
 */
export async function checkedFetch(url: URL, options: CheckedFetchOptions): Promise<CheckedFetchResult> {
  const follow = options.follow ?? REDIRECT_STATUSES;
  const maxRedirects = options.maxRedirects ?? 10;
  let method = options.method.toUpperCase();
  let body = options.body;
  for (let hop = 0;; hop++) {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return { ok: false, code: "net_denied", message: `refusing non-http URL scheme ${url.protocol}` };
    }
    if (options.policy !== undefined) {
      const target = {
        scheme: url.protocol.slice(0, -1) as NetScheme,
        host: url.hostname,
        port: portOf(url),
      };
      // An address decided before is known at once: no promise, no abort listener.
      const decision = options.policy.knownOutbound(target) ??
        (options.signal
          ? await untilAborted(options.policy.checkOutbound(target), options.signal)
          : await options.policy.checkOutbound(target));
      if (!decision.ok) return { ok: false, code: "net_denied", message: decision.reason };
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: options.headers,
        body: method === "GET" || method === "HEAD" ? undefined : body,
        signal: options.signal,
        redirect: "manual",
      });
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        return {
          ok: false,
          code: "net_denied",
          message: `network access to ${hostPortOf(url)} denied by the host's permissions`,
        };
      }
      throw e;
    }
    // Only a status we follow needs its Location: most responses skip the header lookup.
    const location = follow.includes(res.status) ? res.headers.get("location") : null;
    if (location === null || hop >= maxRedirects) {
      return { ok: true, response: res, url, redirects: hop };
    }
    await res.body?.cancel();
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      return {
        ok: false,
        code: "invalid_redirect",
        message: "invalid redirect location",
        status: res.status,
      };
    }
    const refused = options.refuseRedirect?.(url, next);
    if (refused !== undefined) return { ok: false, code: "net_denied", message: refused, status: res.status };
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
      method = "GET";
      body = undefined;
    }
    url = next;
  }
}
