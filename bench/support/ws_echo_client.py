"""The client of bench/ustream_bench.ts, in its own process (Python's `websockets`, Debian
python3-websockets: asyncio sets TCP_NODELAY, where Deno's WebSocket client left frames over
~100 bytes to Nagle and a 40 ms delayed ACK). Connects (Authorization: Bearer TOKEN unless "-"),
sends ROUNDS SSF frames of SIZE data bytes one at a time, each after the previous echo came back,
and prints one JSON line: round-trip p50, p99 and mean in microseconds (the first 10 % warm up).
    python3 bench/support/ws_echo_client.py URL TOKEN|- ROUNDS SIZE
"""
import asyncio, json, struct, sys, time

import websockets


async def main(url, token, rounds, size):
    headers = {} if token == "-" else {"Authorization": "Bearer " + token}
    frame = struct.pack("<4sHHHHIQII", b"SPST", 1, 32, 2, 0, 1, 1, 0, size) + b"\x07" * size
    async with websockets.connect(url, extra_headers=headers, max_size=None) as ws:
        samples = []
        warmup = rounds // 10
        for i in range(rounds + warmup):
            t0 = time.perf_counter()
            await ws.send(frame)
            echo = await ws.recv()
            if len(echo) != len(frame):
                raise SystemExit("echo of another size")
            if i >= warmup:
                samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    at = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(json.dumps({"p50": at(0.5), "p99": at(0.99), "mean": sum(samples) / len(samples)}))


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
