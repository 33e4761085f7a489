/**
 * Message ops carried by the guest⇄host Link (runtime/channel.ts). Each family owns a
 * range so the main thread can route a message to its driver by op alone.
 */
export const Op = {
  // core, guest → host
  LOG: 1,
  /** A blocking request from the guest: payload {id, method, params}; answered with REPLY. */
  CALL: 2,
  // core, host → guest
  REPLY: 3,

  // cchat (16–31)
  CHAT_REQUEST: 16,
  CHAT_CANCEL: 17,
  CHAT_RESULT: 18,

  // mic (32–47). Starting a capture is a CALL ("mic.start"), so a host without the mic
  // driver fails at once instead of waiting for a frame that never comes.
  /** guest → host: stop the capture of an fd; JSON {generation, closed}. */
  MIC_STOP: 33,
  /** host → guest: one PCM frame behind a binary header (runtime/hostcalls/mic.ts). */
  MIC_FRAME: 34,
  /** host → guest: capture ended (EOF) or failed; JSON {generation, type, error?}. */
  MIC_EVENT: 35,
  /** guest → host: the stub PCM buffer (`stub_pcm16_base64`, decoded). */
  MIC_STUB_DATA: 36,
} as const;

/** The family an op belongs to, for routing on the main thread. */
export function opFamily(op: number): "core" | "cchat" | "mic" | "unknown" {
  if (op < 16) return "core";
  if (op < 32) return "cchat";
  if (op < 48) return "mic";
  return "unknown";
}

/** A guest's log line as it crosses to the host. */
export interface LogRecord {
  level: number;
  message: string;
}
