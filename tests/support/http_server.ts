/**
 * A small HTTP server for skill tests, on a real socket (`Deno.serve`, 127.0.0.1, port 0).
 * Routes:
 *   GET  /text?body=…           200 with that body (default "hello from the test server")
 *   GET  /big?bytes=N           200 with N bytes of "x"
 *   GET  /html                  200 with a small HTML page
 *   *    /echo                  200 with "METHOD BODY" (content-type echoed in a header)
 *   GET  /status/N              status N with a short body
 *   GET  /slow?ms=N             waits N ms (cut short by close) then 200 "slow"
 *   *    /redirect?to=URL&status=S   S (default 302) with Location URL
 *   GET  /loop                  302 to itself, forever
 *   GET  /count                 200 with the number of /count requests so far
 * Every request is recorded (method, path with query, body, content-type).
 */

export interface TestRequest {
  method: string;
  path: string;
  body: string;
  contentType: string | null;
  userAgent: string | null;
}

export interface TestHttpServer {
  origin: string;
  port: number;
  requests: TestRequest[];
  close(): Promise<void>;
}

export function startHttpServer(): TestHttpServer {
  const requests: TestRequest[] = [];
  const pending = new Set<() => void>();
  let counted = 0;
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pending.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      pending.add(done);
    });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const body = await request.text();
    requests.push({
      method: request.method,
      path: url.pathname + url.search,
      body,
      contentType: request.headers.get("content-type"),
      userAgent: request.headers.get("user-agent"),
    });
    const q = url.searchParams;
    switch (url.pathname) {
      case "/text":
        return new Response(q.get("body") ?? "hello from the test server");
      case "/big":
        return new Response("x".repeat(Number(q.get("bytes") ?? 1000)));
      case "/html":
        return new Response(
          "<html><head><title>T</title><style>p{color:red}</style><script>var x = 1;</script></head>" +
            "<body><h1>Solar power</h1><p>Panels turn sunlight into electricity &amp; store it.</p></body></html>",
          { headers: { "content-type": "text/html" } },
        );
      case "/echo":
        return new Response(`${request.method} ${body}`, {
          headers: { "x-content-type": request.headers.get("content-type") ?? "" },
        });
      case "/slow":
        await wait(Number(q.get("ms") ?? 1000));
        return new Response("slow");
      case "/redirect":
        return new Response(null, {
          status: Number(q.get("status") ?? 302),
          headers: { location: q.get("to") ?? "/text" },
        });
      case "/loop":
        return new Response(null, { status: 302, headers: { location: "/loop" } });
      case "/count":
        return new Response(`count=${++counted}`);
      default: {
        const status = /^\/status\/(\d{3})$/.exec(url.pathname);
        if (status) return new Response(`status ${status[1]}`, { status: Number(status[1]) });
        return new Response("not found", { status: 404 });
      }
    }
  });
  const port = server.addr.port;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    async close() {
      for (const done of [...pending]) done();
      await server.shutdown();
    },
  };
}
