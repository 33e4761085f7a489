/**
 * cis.*: the worker part of the skills' host functions (SPEC.md §9).
 *
 * Each call checks its pointers (-EFAULT) and lengths (-EINVAL) before anything else, then
 * asks the driver (main thread) with one blocking request bounded by the skill's remaining
 * time (and, for HTTP, the per-request limit): past it the call is -ETIMEDOUT. Results follow
 * snprintf: the full length is returned, min(length, cap) bytes are written, and when the
 * result did not fit it is kept here, so the next call of the same function with the same
 * inputs gets it without repeating the request (an AI answer or a POST is never asked twice).
 * A kept result is charged to the guest's host budget until it is delivered or replaced.
 * Failures other than a missing key are also logged at WARN, naming the cause.
 */
import { HostcallError, LogLevel } from "../../runtime/abi.ts";
import type { GuestRuntime } from "../../runtime/guest.ts";
import { timeoutMessage } from "../../protocol/rpc.ts";
import type { Method, Outcome } from "../../protocol/rpc.ts";
import { Op } from "../../protocol/wire.ts";
import type { HostcallFn } from "../family.ts";
import {
  aiPrompt,
  type CisResult,
  httpRequest,
  MAX_KEY_BYTES,
  MAX_PROMPT_BYTES,
  MAX_REQUEST_BODY_BYTES,
  MAX_URL_BYTES,
  memoryGet,
  memorySet,
  type SkillContext,
  skillContextOf,
} from "./protocol.ts";

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Longest a single request may wait (setTimeout's limit), when the guest has no deadline. */
const MAX_WAIT_MS = 2_147_483_647;

/** How far past the skill's deadline a call bounded by it waits: the host's stop comes first. */
const DEADLINE_GRACE_MS = 1000;

type Fn = "ai_prompt" | "memory_get" | "http_request";

interface Kept {
  inputs: Uint8Array;
  result: Uint8Array;
}

/** The inputs of a call as one byte string: each part length-prefixed, so no two calls collide. */
function inputsKey(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length, true);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function implement(rt: GuestRuntime): Record<string, HostcallFn> {
  const { mem } = rt;
  const kept = new Map<Fn, Kept>();
  let context: SkillContext | null | undefined; // undefined: not read yet; null: not a skill run

  const warn = (fn: string, message: string) =>
    rt.send(Op.LOG, LogLevel.WARN, encoder.encode(`cis.${fn}: ${message}`));

  /** Fails with `errno`, logging why (a missing key is a normal answer, not worth a line). */
  const refuse = (fn: string, errno: HostcallError["errno"], message: string): never => {
    if (errno !== "ENOENT") warn(fn, message);
    throw new HostcallError(errno, message);
  };

  const skill = (fn: string): SkillContext => {
    if (context === undefined) context = skillContextOf(rt.context) ?? null;
    if (context === null) {
      return refuse(fn, "EACCES", "cis host functions serve skills only (run it with `spear skill run`)");
    }
    return context;
  };

  const drop = (fn: Fn) => {
    const k = kept.get(fn);
    if (!k) return;
    kept.delete(fn);
    rt.budget.release(k.result.length);
  };

  /** Copies `len` guest bytes at `ptr` (EINVAL for a bad length, EFAULT outside memory). */
  const input = (fn: string, what: string, ptr: number, len: number, max: number): Uint8Array => {
    if (len < 0) refuse(fn, "EINVAL", `negative ${what} length ${len}`);
    if (len > max) refuse(fn, "EINVAL", `${what} of ${len} bytes is over ${max}`);
    return mem.copy(ptr, len);
  };

  const text = (fn: string, what: string, bytes: Uint8Array): string => {
    try {
      return utf8.decode(bytes);
    } catch {
      return refuse(fn, "EINVAL", `${what} is not valid UTF-8`);
    }
  };

  /**
   * One request to the driver. A per-request limit shorter than the skill's remaining time
   * makes the call -ETIMEDOUT; otherwise the skill's own deadline ends the whole run (the host
   * stops it, and with it the request), so the wait runs a little past it rather than racing it.
   */
  const ask = <P>(fn: string, m: Method<P, CisResult>, params: P, limitMs = Infinity): CisResult => {
    const remaining = rt.remainingMs();
    if (remaining <= 0) refuse(fn, "ETIMEDOUT", "no time left before the skill's time limit");
    const byLimit = limitMs < remaining;
    const timeoutMs = Math.max(
      1,
      Math.floor(Math.min(byLimit ? limitMs : remaining + DEADLINE_GRACE_MS, MAX_WAIT_MS)),
    );
    const outcome: Outcome<CisResult> = rt.call(m, params, { timeoutMs });
    if (!outcome.ok) {
      if (outcome.cancelled || outcome.error === timeoutMessage(timeoutMs)) {
        const why = byLimit ? `the request limit of ${limitMs} ms` : "the skill's time limit";
        return refuse(fn, "ETIMEDOUT", `timed out after ${timeoutMs} ms (${why})`);
      }
      return refuse(fn, "EIO", outcome.error);
    }
    const result = outcome.value;
    if (!result.ok) return refuse(fn, result.errno ?? "EIO", result.message ?? "failed");
    return result;
  };

  /**
   * The snprintf rule: checks the result buffer first (so a bad one costs no request), serves
   * a kept result for the same inputs or runs `request`, writes what fits, keeps the rest.
   */
  const deliver = (
    fn: Fn,
    parts: Uint8Array[],
    resultPtr: number,
    resultCap: number,
    request: () => Uint8Array,
  ): number => {
    if (resultCap < 0) refuse(fn, "EINVAL", `negative result capacity ${resultCap}`);
    if (resultCap > 0) mem.check(resultPtr, resultCap);
    const key = inputsKey(parts);
    const k = kept.get(fn);
    let result: Uint8Array;
    if (k && sameBytes(k.inputs, key)) {
      result = k.result;
    } else {
      drop(fn);
      result = request();
    }
    if (result.length > 0x7fffffff) refuse(fn, "EIO", `result of ${result.length} bytes is too large`);
    const n = Math.min(result.length, resultCap);
    if (n > 0) mem.write(resultPtr, result.subarray(0, n));
    if (result.length > resultCap) {
      if (kept.get(fn)?.result !== result) {
        drop(fn);
        rt.charge(result.length, `cis.${fn}: keeping a result of ${result.length} bytes`);
        kept.set(fn, { inputs: key, result });
      }
    } else {
      drop(fn);
    }
    return result.length;
  };

  return {
    ai_prompt: (promptPtr: number, promptLen: number, resultPtr: number, resultCap: number) => {
      skill("ai_prompt");
      const prompt = input("ai_prompt", "prompt", promptPtr, promptLen, MAX_PROMPT_BYTES);
      if (promptLen === 0) refuse("ai_prompt", "EINVAL", "the prompt is empty");
      const promptText = text("ai_prompt", "the prompt", prompt);
      return deliver("ai_prompt", [prompt], resultPtr, resultCap, () => {
        const r = ask("ai_prompt", aiPrompt, { prompt: promptText });
        return encoder.encode(r.text ?? "");
      });
    },

    memory_get: (keyPtr: number, keyLen: number, valuePtr: number, valueCap: number) => {
      skill("memory_get");
      const keyBytes = input("memory_get", "key", keyPtr, keyLen, MAX_KEY_BYTES);
      if (keyLen === 0) refuse("memory_get", "EINVAL", "the key is empty");
      const key = text("memory_get", "the key", keyBytes);
      return deliver("memory_get", [keyBytes], valuePtr, valueCap, () => {
        const r = ask("memory_get", memoryGet, { key });
        return Uint8Array.fromBase64(r.data ?? "");
      });
    },

    memory_set: (keyPtr: number, keyLen: number, valuePtr: number, valueLen: number) => {
      const ctx = skill("memory_set");
      const keyBytes = input("memory_set", "key", keyPtr, keyLen, MAX_KEY_BYTES);
      if (keyLen === 0) refuse("memory_set", "EINVAL", "the key is empty");
      const key = text("memory_set", "the key", keyBytes);
      if (valueLen > ctx.maxValueBytes) {
        // Refused here: a value over the cap never crosses to the host.
        mem.check(valuePtr, valueLen);
        refuse(
          "memory_set",
          "ENOSPC",
          `a value of ${valueLen} bytes is over the skill's max_value_bytes (${ctx.maxValueBytes})`,
        );
      }
      const value = input("memory_set", "value", valuePtr, valueLen, ctx.maxValueBytes);
      // What memory_get kept may be this key's old value.
      drop("memory_get");
      ask("memory_set", memorySet, { key, value: value.toBase64() });
      return 0;
    },

    http_request: (
      urlPtr: number,
      urlLen: number,
      bodyPtr: number,
      bodyLen: number,
      resultPtr: number,
      resultCap: number,
    ) => {
      const ctx = skill("http_request");
      const urlBytes = input("http_request", "URL", urlPtr, urlLen, MAX_URL_BYTES);
      const url = text("http_request", "the URL", urlBytes);
      const body = input("http_request", "body", bodyPtr, bodyLen, MAX_REQUEST_BODY_BYTES);
      return deliver("http_request", [urlBytes, body], resultPtr, resultCap, () => {
        const params = bodyLen === 0 ? { url } : { url, body: body.toBase64() };
        const r = ask("http_request", httpRequest, params, ctx.httpTimeoutMs);
        return Uint8Array.fromBase64(r.data ?? "");
      });
    },
  };
}
