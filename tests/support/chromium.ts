/**
 * A real headless Chromium (Debian's `chromium-headless-shell`, installed by
 * `scripts/setup.sh --test`) driven over the Chrome DevTools Protocol: open a page, type into it
 * as a person would (focus + key events), read its DOM, take a screenshot. The protocol client
 * is the few messages the tests need, over Deno's WebSocket.
 */
import { within } from "./within.ts";

export const CHROMIUM = "/usr/bin/chromium-headless-shell";

export function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

interface Pending {
  resolve: (value: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

/** One page in a headless Chromium, through a flattened CDP session. */
export class ChromiumPage {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private constructor(
    private readonly child: Deno.ChildProcess,
    private readonly ws: WebSocket,
    private readonly profile: string,
    private sessionId = "",
  ) {
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data as string);
      const waiter = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(`CDP: ${JSON.stringify(msg.error)}`));
      else waiter.resolve(msg.result ?? {});
    };
  }

  static async launch(width = 900, height = 560): Promise<ChromiumPage> {
    const profile = await Deno.makeTempDir({ prefix: "spear-chromium-" });
    const child = new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox", // tests run as root in CI
        "--disable-gpu",
        "--no-first-run",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium prints the browser's DevTools URL on stderr once it listens.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const url = await within(
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`chromium exited before listening:\n${text}`);
          text += value;
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
          if (m) return m[1];
        }
      })(),
      "chromium's DevTools endpoint",
      30_000,
    );
    void (async () => {
      while (!(await reader.read()).done) { /* keep draining */ }
    })().catch(() => {});
    const ws = new WebSocket(url);
    await within(
      new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("cannot reach chromium's DevTools"));
      }),
      "DevTools connection",
    );
    const page = new ChromiumPage(child, ws, profile);
    const { targetId } = await page.send("Target.createTarget", { url: "about:blank" });
    const attached = await page.send("Target.attachToTarget", { targetId, flatten: true });
    page.sessionId = attached.sessionId as string;
    await page.send("Page.enable");
    await page.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return page;
  }

  /** A CDP command to the page (or, with `browser`, to the browser itself). */
  send(
    method: string,
    params: Record<string, unknown> = {},
    browser = false,
  ): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const message: Record<string, unknown> = { id, method, params };
    if (this.sessionId && !browser) message.sessionId = this.sessionId;
    this.ws.send(JSON.stringify(message));
    return within(
      new Promise((resolve, reject) => this.pending.set(id, { resolve, reject })),
      `CDP ${method}`,
    );
  }

  async navigate(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
    await this.until("document.readyState === 'complete'", "the page loaded");
  }

  /** Evaluates a JS expression in the page; its value (JSON-able). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`page threw: ${JSON.stringify(r.exceptionDetails)}`);
    return (r.result as { value: T }).value;
  }

  /** Polls `expression` until it is truthy. */
  async until(expression: string, what: string, ms = 20_000): Promise<void> {
    await within(
      (async () => {
        while (!(await this.evaluate<boolean>(`Boolean(${expression})`))) {
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      what,
      ms,
    );
  }

  /** Types text into the focused element key by key, then presses Enter. */
  async type(text: string): Promise<void> {
    for (const ch of text) {
      await this.send("Input.dispatchKeyEvent", { type: "keyDown", text: ch, key: ch, unmodifiedText: ch });
      await this.send("Input.dispatchKeyEvent", { type: "keyUp", key: ch });
    }
    const enter = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
    await this.send("Input.dispatchKeyEvent", { type: "keyDown", text: "\r", ...enter });
    await this.send("Input.dispatchKeyEvent", { type: "keyUp", ...enter });
  }

  async screenshot(path: string): Promise<void> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    await Deno.writeFile(path, Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0)));
  }

  /**
   * Closes the browser as a person would (its pages' sockets close normally); a browser that does
   * not exit is killed. Killing it first could leave its network process holding the sockets.
   */
  async close(): Promise<void> {
    await this.send("Browser.close", {}, true).catch(() => {});
    const exited = await Promise.race([
      this.child.status.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
    ]);
    if (!exited) {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
      await this.child.status;
    }
    try {
      this.ws.close();
    } catch { /* gone */ }
    await Deno.remove(this.profile, { recursive: true }).catch(() => {});
  }
}

/** Where tests put files for people to look at (screenshots): test-output/ or $SPEARHOST_TEST_OUTPUT. */
export async function testOutputDir(): Promise<string> {
  const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
  const dir = Deno.env.get("SPEARHOST_TEST_OUTPUT") ?? `${root}/test-output`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}
