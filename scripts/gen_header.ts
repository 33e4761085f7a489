/**
 * Generates `guests/include/spear_abi.h`, the C view of the numbers in `runtime/abi.ts`.
 *
 *   deno run --allow-write=guests/include scripts/gen_header.ts
 *
 * `renderAbiHeader()` is exported so a test can check that the committed header still matches
 * `runtime/abi.ts`. Macro names follow SPEAR's C SDK (`sdk/c/include/spear.h`) so that guests
 * written for SPEAR compile unchanged; names SPEAR does not have are marked as spearhost additions.
 */
import {
  CchatCtl,
  CchatSendFlag,
  EPOLL_RECORD_BYTES,
  EpollOp,
  Errno,
  FdCtl,
  FdFlag,
  LogLevel,
  MAX_LOG_BYTES,
  MicCtl,
  Poll,
  RtasrCtl,
} from "../runtime/abi.ts";

/** Output path, relative to the repository root. */
export const ABI_HEADER_PATH = "guests/include/spear_abi.h";

/** Errno names that SPEAR's C header defines; every other one is a spearhost addition. */
const SPEAR_C_ERRNOS = new Set([
  "EPERM",
  "ENOENT",
  "EIO",
  "EBADF",
  "EAGAIN",
  "ENOMEM",
  "EFAULT",
  "EINVAL",
  "ENOSPC",
  "EPIPE",
  "ECONNRESET",
  "ENOTCONN",
  "ETIMEDOUT",
]);

interface Group {
  title: string;
  /** Macro name for a key of the source object. */
  name: (key: string) => string;
  values: Readonly<Record<string, number>>;
  hex?: number; // print as 0x with this many digits
  /** Optional trailing comment per key. */
  note?: (key: string) => string | undefined;
}

const GROUPS: Group[] = [
  {
    title: "errno values (Linux numbering); hostcalls return them negated, e.g. -SPEAR_EAGAIN",
    name: (k) => `SPEAR_${k}`,
    values: Errno,
    note: (k) => SPEAR_C_ERRNOS.has(k) ? undefined : "not in SPEAR's C header",
  },
  {
    title: "readiness bits for spear_epoll_ctl / spear_epoll_wait",
    name: (k) => `SPEAR_${k}`,
    values: Poll,
    hex: 3,
  },
  { title: "spear_epoll_ctl operations", name: (k) => `SPEAR_EPOLL_CTL_${k}`, values: EpollOp },
  { title: "spear_fd_ctl commands", name: (k) => `SPEAR_FD_CTL_${k}`, values: FdCtl },
  {
    title: 'fd flags (SET_FLAGS/GET_FLAGS name them in JSON, e.g. "O_NONBLOCK")',
    name: (k) => `SPEAR_${k}`,
    values: FdFlag,
    hex: 1,
    note: () => "spearhost name; SPEAR's C header has no macro for it",
  },
  { title: "cchat_ctl commands", name: (k) => `SPEAR_CCHAT_CTL_${k}`, values: CchatCtl },
  {
    title: "cchat_send flag bits",
    name: (k) => `SPEAR_CCHAT_SEND_FLAG_${k}`,
    values: CchatSendFlag,
    hex: 1,
  },
  {
    title: "rtasr_ctl commands (SPEAR spells the prefix RTA)",
    name: (k) => `SPEAR_RTA_CTL_${k}`,
    values: RtasrCtl,
  },
  {
    title: "mic_ctl commands",
    name: (k) => `SPEAR_MIC_CTL_${k}`,
    values: MicCtl,
    note: (k) => k === "LIST_DEVICES" ? "spearhost extension" : undefined,
  },
  { title: "log levels for the `log` import", name: (k) => `SP_LOG_${k}`, values: LogLevel },
  {
    title: "sizes (spearhost additions)",
    name: (k) => `SPEAR_${k}`,
    values: { LOG_MAX_BYTES: MAX_LOG_BYTES, EPOLL_RECORD_BYTES },
  },
];

function formatValue(v: number, hex?: number): string {
  if (!Number.isInteger(v) || v < 0) throw new Error(`unsupported constant value ${v}`);
  return hex === undefined ? String(v) : `0x${v.toString(16).padStart(hex, "0")}`;
}

/** The full text of `guests/include/spear_abi.h`. Deterministic: same input, same bytes. */
export function renderAbiHeader(): string {
  const out: string[] = [
    "/*",
    " * spear_abi.h -- GENERATED FILE, DO NOT EDIT.",
    " *",
    " * Generated from runtime/abi.ts by scripts/gen_header.ts (`deno task gen-header`).",
    " * Change the numbers in runtime/abi.ts and regenerate; a test fails when they drift apart.",
    " * Include <spear.h>, which includes this file.",
    " *",
    ' * These are SPEAR\'s fixed "virtual errno" and command numbers. Never compare hostcall',
    " * results with <errno.h> values: wasi-libc numbers errno differently (ENOSPC is 51 there).",
    " */",
    "#ifndef SPEARHOST_SPEAR_ABI_H",
    "#define SPEARHOST_SPEAR_ABI_H",
  ];
  for (const g of GROUPS) {
    out.push("", `/* ${g.title} */`);
    const rows = Object.entries(g.values).map(([k, v]) => {
      const note = g.note?.(k);
      return { macro: g.name(k), value: formatValue(v, g.hex), note };
    });
    const width = Math.max(...rows.map((r) => r.macro.length));
    for (const r of rows) {
      const line = `#define ${r.macro.padEnd(width)} ${r.value}`;
      out.push(r.note ? `${line} /* ${r.note} */` : line);
    }
  }
  out.push("", "#endif /* SPEARHOST_SPEAR_ABI_H */", "");
  return out.join("\n");
}

async function main(): Promise<void> {
  const target = new URL(`../${ABI_HEADER_PATH}`, import.meta.url);
  const text = renderAbiHeader();
  // Leave the file (and its mtime) alone when nothing changed, so guests/build.sh stays a no-op.
  // Only compare when reading is already allowed; the task grants write access only.
  const canRead = Deno.permissions.querySync({ name: "read", path: target }).state === "granted";
  if (canRead) {
    try {
      if (await Deno.readTextFile(target) === text) return;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  await Deno.writeTextFile(target, text);
  console.error(`gen_header: wrote ${ABI_HEADER_PATH}`);
}

if (import.meta.main) {
  await main();
}
