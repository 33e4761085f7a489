/**
 * The status line `spear skill run` shows on a terminal's stderr while a slow AI or HTTP call
 * is in flight (an ActivitySink, host/host.ts): after `delayMs` it draws
 * `⠹ summarise: ai_prompt (backend openai) 1.4 s` on one line, redraws it as time passes, and
 * erases it when nothing is in flight any more, so the terminal is left as it was. Nothing is
 * written when stderr is not a terminal (the CLI only installs it on one).
 */
import type { Activity, ActivitySink } from "../host/host.ts";
import { escapeLogText } from "../host/log.ts";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const encoder = new TextEncoder();

export interface StatusLineOptions {
  /** Writes terminal text (default: synchronously to stderr). */
  write?: (text: string) => void;
  /** Nothing is drawn for activities shorter than this (default 300 ms). */
  delayMs?: number;
  /** Redraw period (default 100 ms). */
  intervalMs?: number;
  /** Clock (default performance.now). */
  now?: () => number;
  /** Widest line drawn (default: the terminal's width, else 80). */
  columns?: number;
}

export class StatusLine implements ActivitySink {
  private readonly active: Activity[] = [];
  private timer?: ReturnType<typeof setInterval>;
  private drawn = false;
  private frame = 0;
  private readonly write: (text: string) => void;
  private readonly delayMs: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly columns: number;

  constructor(options: StatusLineOptions = {}) {
    this.write = options.write ?? ((text) => Deno.stderr.writeSync(encoder.encode(text)));
    this.delayMs = options.delayMs ?? 300;
    this.intervalMs = options.intervalMs ?? 100;
    this.now = options.now ?? (() => performance.now());
    let columns = options.columns;
    if (columns === undefined) {
      try {
        columns = Deno.consoleSize().columns || 80; // 0: a pty nobody sized
      } catch {
        columns = 80;
      }
    }
    this.columns = Math.max(20, columns);
  }

  begin(activity: Activity): void {
    this.active.push(activity);
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
  }

  end(activity: Activity): void {
    const i = this.active.indexOf(activity);
    if (i >= 0) this.active.splice(i, 1);
    if (this.active.length > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  /** Draws the newest activity that has been in flight for at least `delayMs` (called by the timer). */
  tick(): void {
    const now = this.now();
    const shown = [...this.active].reverse().find((a) => now - a.startedAt >= this.delayMs);
    if (!shown) return;
    const seconds = ((now - shown.startedAt) / 1000).toFixed(1);
    const more = this.active.length > 1 ? ` (+${this.active.length - 1} more)` : "";
    const head = `${FRAMES[this.frame++ % FRAMES.length]} ${escapeLogText(shown.guest)}: `;
    const tail = ` ${seconds} s${more}`;
    // What is in flight gives way first, so the elapsed time stays visible.
    let what = [...escapeLogText(shown.what)];
    const room = this.columns - 1 - [...head].length - [...tail].length;
    if (what.length > room) what = [...what.slice(0, Math.max(0, room - 1)), "…"];
    const text = head + what.join("") + tail;
    this.write(`\r\x1b[2K${text}`);
    this.drawn = true;
  }

  /** Erases the line if one is drawn. */
  clear(): void {
    if (!this.drawn) return;
    this.write("\r\x1b[2K");
    this.drawn = false;
  }
}
