// The user-stream page: connects to /ws with the run's token, sends each line typed as one SSF
// v1 DATA frame on the chosen stream, and shows every frame the guest sends back as it arrives.
// The token comes from the page's fragment (#token=…, never sent to the server) or the field,
// and travels as the subprotocol "spear.token.<token>" beside "spear.ssf.v1" (a browser cannot
// set headers on a WebSocket).
"use strict";

const SSF_MAGIC = 0x54535053; // "SPST" little-endian
const HEADER_BYTES = 32;
const MSG_DATA = 2;

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let ws = null;
let seq = 0;

function frame(streamId, text) {
  const data = encoder.encode(text);
  const bytes = new Uint8Array(HEADER_BYTES + data.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, SSF_MAGIC, true);
  v.setUint16(4, 1, true); // version
  v.setUint16(6, HEADER_BYTES, true);
  v.setUint16(8, MSG_DATA, true);
  v.setUint16(10, 0, true); // flags
  v.setUint32(12, streamId, true);
  v.setBigUint64(16, BigInt(++seq), true);
  v.setUint32(24, 0, true); // meta_len
  v.setUint32(28, data.length, true);
  bytes.set(data, HEADER_BYTES);
  return bytes;
}

function parse(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < HEADER_BYTES) return null;
  const v = new DataView(buffer);
  if (v.getUint32(0, true) !== SSF_MAGIC) return null;
  const headerLen = v.getUint16(6, true);
  const metaLen = v.getUint32(24, true);
  const dataLen = v.getUint32(28, true);
  const start = headerLen + metaLen;
  return {
    streamId: v.getUint32(12, true),
    seq: v.getBigUint64(16, true),
    data: bytes.subarray(start, start + dataLen),
  };
}

function log(text, cls) {
  const line = document.createElement("div");
  line.className = cls;
  line.textContent = text;
  $("log").append(line);
  $("log").scrollTop = $("log").scrollHeight;
}

function status(text, cls) {
  $("status").textContent = text;
  $("status").className = cls;
}

function setConnected(on) {
  $("text").disabled = !on;
  $("send-button").disabled = !on;
  $("connect-button").textContent = on ? "Disconnect" : "Connect";
  if (on) $("text").focus();
}

function connect() {
  const token = $("token").value.trim();
  if (!token) return status("a token is needed (open the page with #token=… or paste it)", "closed");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  ws = new WebSocket(url, ["spear.ssf.v1", `spear.token.${token}`]);
  ws.binaryType = "arraybuffer";
  status("connecting…", "");
  ws.onopen = () => {
    status(`connected to ${url}, stream ${$("stream").value}`, "open");
    setConnected(true);
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") return log(`(text message ignored: ${e.data})`, "note");
    const f = parse(e.data);
    if (!f) return log(`(not an SSF frame: ${e.data.byteLength} bytes)`, "note");
    log(`← [${f.streamId}#${f.seq}] ${decoder.decode(f.data)}`, "received");
  };
  ws.onclose = (e) => {
    status(`closed (${e.code}${e.reason ? ` ${e.reason}` : ""})`, "closed");
    setConnected(false);
    ws = null;
  };
}

$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  if (ws) ws.close(1000, "closed by the user");
  else connect();
});

$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!ws || ws.readyState !== WebSocket.OPEN || text === "") return;
  const streamId = Number($("stream").value) >>> 0;
  ws.send(frame(streamId, text));
  log(`→ [${streamId}#${seq}] ${text}`, "sent");
  $("text").value = "";
});

const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  $("token").value = fragment.get("token");
  history.replaceState(null, "", location.pathname); // keep the token out of the address bar
  connect();
}
