/**
 * `spear stream connect URL --token T [--stream N]`: a terminal client of the user-stream
 * endpoint. What arrives on stdin goes out as SSF v1 DATA frames on stream N (one frame per
 * read, at most 64 KiB of data each); the data of every frame the guest sends back is written
 * to stdout as it arrives. When stdin ends, the client waits until nothing has arrived for
 * `idleMs` (the answers to what it sent) and closes with 1000; when the server closes first,
 * its code and reason go to stderr.
 */
import { encodeSsfFrame, parseSsfHeader, SSF_SUBPROTOCOL, ssfData } from "./protocol.ts";

/** Data bytes per frame sent (a frame is at most 256 KiB). */
const CHUNK = 64 * 1024;

export interface ConnectOptions {
  url: string;
  token: string;
  streamId: number;
  /** After stdin ends: close once nothing arrived for this long. */
  idleMs?: number;
  stdin?: ReadableStream<Uint8Array>;
  stdout?: WritableStream<Uint8Array>;
  /** One line for the user (default: stderr). */
  report?: (line: string) => void;
}

/** Runs the client; resolves with the exit code (0 when the session ended normally). */
export async function connectStream(options: ConnectOptions): Promise<number> {
  const report = options.report ?? ((line: string) => console.error(line));
  const idleMs = options.idleMs ?? 1000;
  const stdout = (options.stdout ?? Deno.stdout.writable).getWriter();
  let url: URL;
  try {
    url = new URL(options.url);
    if (url.protocol !== "ws:" && url.protocol !== "wss:") throw new Error("not ws: or wss:");
  } catch (e) {
    report(`spear stream: bad URL ${options.url}: ${(e as Error).message}`);
    return 2;
  }
  // Deno's WebSocket takes headers (a non-standard option): the token never enters the URL.
  const ws = new WebSocket(url, {
    protocols: [SSF_SUBPROTOCOL],
    headers: { authorization: `Bearer ${options.token}` },
  } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  let lastArrival = performance.now();
  let writing = Promise.resolve();
  const opened = new Promise<boolean>((resolve) => {
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
  });
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  ws.onmessage = (e) => {
    lastArrival = performance.now();
    if (typeof e.data === "string") return;
    const frame = new Uint8Array(e.data as ArrayBuffer);
    const header = parseSsfHeader(frame);
    if (typeof header === "string") return report(`spear stream: ignored a frame: ${header}`);
    const data = ssfData(frame, header);
    writing = writing.then(() => stdout.write(data));
  };
  if (!(await opened)) {
    const ev = await closed;
    report(
      `spear stream: cannot connect to ${url.href}${
        ev.reason ? `: ${ev.reason}` : " (refused: check the URL and token)"
      }`,
    );
    return 1;
  }
  let byServer = true;
  const send = (async () => {
    let seq = 0;
    const input = options.stdin ?? Deno.stdin.readable;
    for await (const chunk of input) {
      for (let at = 0; at < chunk.length; at += CHUNK) {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(encodeSsfFrame({ streamId: options.streamId, seq: ++seq }, chunk.subarray(at, at + CHUNK)));
      }
    }
    // stdin ended: wait for the answers, then close.
    while (ws.readyState === WebSocket.OPEN && performance.now() - lastArrival < idleMs) {
      await new Promise((r) => setTimeout(r, Math.max(10, idleMs - (performance.now() - lastArrival))));
    }
    if (ws.readyState === WebSocket.OPEN) {
      byServer = false;
      ws.close(1000, "stdin ended");
    }
  })();
  const ev = await closed;
  await writing;
  await stdout.close().catch(() => {});
  void send.catch(() => {});
  if (byServer) {
    report(`spear stream: closed by the server (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`);
    return ev.code === 1000 || ev.code === 1001 ? 0 : 1;
  }
  return 0;
}
