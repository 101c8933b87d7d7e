"""Throughput of one simulator process (faults off, rate limits off).

Starts `vipps-billing simulator` in a subprocess, then drives it from several client processes, each
running many keep-alive connections with a minimal raw HTTP/1.1 client (so the client side is cheap
and the server is what is measured). Prints requests/s and latency percentiles per scenario.

    uv run python tests/bench/bench_simulator.py [--requests 20000] [--clients 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx

CREDENTIALS = {
    "client_id": "simulator-client-id",
    "client_secret": "simulator-client-secret",
    "Ocp-Apim-Subscription-Key": "simulator-subscription-key",
}
AGREEMENT = {
    "pricing": {"amount": 100000, "currency": "NOK"},
    "interval": {"unit": "MONTH", "count": 1},
    "merchantRedirectUrl": "https://example.com/r",
    "merchantAgreementUrl": "https://example.com/a",
    "productName": "Bench",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def connection(port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for raw in requests:
        start = time.perf_counter()
        writer.write(raw)
        status = await read_response(reader)
        latencies.append(time.perf_counter() - start)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


def client_process(port: int, requests: list[bytes], connections: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> tuple[float, list[float], dict[int, int]]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        shares = [requests[i::connections] for i in range(connections)]
        start = time.perf_counter()
        await asyncio.gather(*(connection(port, share, latencies, statuses) for share in shares if share))
        return time.perf_counter() - start, latencies, statuses

    queue.put(asyncio.run(run()))


def drive(port: int, requests: list[bytes], clients: int, connections: int) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    parts = [requests[i::clients] for i in range(clients)]
    procs = [multiprocessing.Process(target=client_process, args=(port, p, connections, queue)) for p in parts]
    wall = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    wall = time.perf_counter() - wall
    for proc in procs:
        proc.join()
    latencies = sorted(x for _, lat, _ in results for x in lat)
    statuses: dict[int, int] = {}
    for _, _, part in results:
        for status, count in part.items():
            statuses[status] = statuses.get(status, 0) + count
    busiest = max(elapsed for elapsed, _, _ in results)
    return {
        "requests": len(latencies),
        "seconds": busiest,
        "rps": len(latencies) / busiest,
        "wall_rps": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": statuses,  # type: ignore[dict-item]
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per scenario")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections per client process")
    return parser.parse_args()


@contextlib.contextmanager
def simulator(port: int) -> Iterator[str]:
    """`vipps-billing simulator --no-rate-limits` on ``port``; its base URL once it answers."""
    command = ["simulator", "--port", str(port), "--no-rate-limits"]
    server = subprocess.Popen(
        [sys.executable, "-c", "from worker.cli.app import main; main()", *command],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/_simulator/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


def active_agreements(base: str, count: int) -> tuple[dict[str, str], list[str]]:
    """Auth headers and ``count`` ACTIVE agreements to aim the scenarios at."""
    with httpx.Client(base_url=base) as http:
        token = http.post("/accesstoken/get", headers=CREDENTIALS).json()["access_token"]
        auth = {
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": CREDENTIALS["Ocp-Apim-Subscription-Key"],
        }
        agreement_ids = []
        for i in range(count):
            agreement_id = http.post(
                "/recurring/v3/agreements", json=AGREEMENT, headers={**auth, "Idempotency-Key": f"d{i}"}
            ).json()["agreementId"]
            http.patch(
                f"/recurring/v3/agreements/{agreement_id}/accept",
                json={"phoneNumber": "4791234567"},
                headers={**auth, "Idempotency-Key": f"a{i}"},
            )
            agreement_ids.append(agreement_id)
    return auth, agreement_ids


def create_charge(agreement_id: str, auth: dict[str, str], key: str, due: str) -> bytes:
    body = {"amount": 10000, "description": "Bench", "due": due, "retryDays": 2, "transactionType": "DIRECT_CAPTURE"}
    path = f"/recurring/v3/agreements/{agreement_id}/charges"
    return build_request("POST", path, {**auth, "Idempotency-Key": key}, json.dumps(body).encode())


def scenarios(auth: dict[str, str], agreement_ids: list[str], n: int) -> dict[str, list[bytes]]:
    """Each scenario's ``n`` raw requests, spread over the agreements."""
    due = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()
    count = len(agreement_ids)
    return {
        "fetch agreement (GET)": [
            build_request("GET", f"/recurring/v3/agreements/{agreement_ids[i % count]}", auth) for i in range(n)
        ],
        "create charge (POST, new key each)": [
            create_charge(agreement_ids[i % count], auth, f"bench-charge-{i}", due) for i in range(n)
        ],
        "idempotent replay (POST, same key)": [
            create_charge(agreement_ids[0], auth, "bench-charge-0", due) for _ in range(n)
        ],
    }


def report(name: str, result: dict[str, float]) -> str:
    return (
        f"  {name:38s} {result['requests']:>7.0f} req in {result['seconds']:.2f} s = "
        f"{result['rps']:>7.0f} req/s   p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
        f"statuses {result['statuses']}"
    )


def main() -> None:
    args = parse_args()
    port = free_port()
    with simulator(port) as base:
        auth, agreement_ids = active_agreements(base, 200)
        print(
            f"simulator throughput, 1 server process, {args.clients} client processes x {args.connections} "
            f"connections, {os.cpu_count()} CPUs, faults off, rate limits off"
        )
        for name, requests in scenarios(auth, agreement_ids, args.requests).items():
            print(report(name, drive(port, requests, args.clients, args.connections)))


if __name__ == "__main__":
    main()
