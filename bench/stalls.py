"""The event loop's longest stall under each heavy request and engine step, over a large store.

Everything the adapter does shares one event loop, so a request or an engine step that holds it holds every
webhook and notify too. This script builds a large store quickly (set-based inserts, `store/synthetic.py`, not
the webhook path), serves the app in this process (on the loop `serve` uses, its heap settled as `serve` settles
it) and times each scenario with two probes beside it (`refund_adapter/loop_probe.py`): the loop's lag (a task
sleeping 5 ms records how late it wakes, and the longest garbage collection meanwhile) and the slowest GET
/healthz. The Alipay sandbox and the shop run in processes of their own, so their work is not counted. The store
holds `--refunds` dead letters (failed refunds, in completed batches of 1000), a backlog of `--backlog` received
refunds and `--query-batches` submitted batches of 1000 due for a query. First the loop is sampled idle for
`--idle-seconds`: what the machine alone adds.

    python bench/stalls.py [--refunds 1000000] [--backlog 100000] [--query-batches 20] [--idle-seconds 10]
                           [--store-url sqlite:///...|postgresql://...] [--json]

Scenarios run in order, and the later ones see what the earlier ones did (the retries requeue dead letters that
the reporter then delivers). Exit status 1 when a scenario's answer is wrong (never for a slow one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from refund_adapter_generic.shop import SimulatedShop, signed_generic_webhook

from refund_adapter.config import parse_config
from refund_adapter.engine.alipay_query import query_once
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.reporter import report_once
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.engine.submitter import submit_once
from refund_adapter.event_loop import new_event_loop
from refund_adapter.heap import settle_heap
from refund_adapter.loop_probe import HealthProbe, LoopLag
from refund_adapter.models import BatchState
from refund_adapter.store import store_from_url, synthetic
from refund_adapter.store.sql import SqlStore
from refund_adapter.testing import ADMIN_HEADERS, free_port, local_config, serve, wait_until
from refund_adapter.web.admin import MAX_RETRY_BODY_BYTES
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

PARTNER = "2088101122136241"
MD5_KEY = "stalls-bench-md5-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(b"stalls-benchmark-secret-32bytes!").decode()
SHOP = "synthetic"
BATCH_SIZE = 1000
CLI = (sys.executable, "-c", "from refund_adapter.cli import main; main()")
DEADLINE_S = 600.0


@dataclass
class Bench:
    url: str
    http: aiohttp.ClientSession
    ctx: EngineContext
    max_body: int

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        if path.startswith(("/-/", "/metrics")):  # the operator's API wants the admin token
            kwargs["headers"] = {**ADMIN_HEADERS, **kwargs.get("headers", {})}
        async with self.http.request(method, self.url + path, **kwargs) as resp:
            return resp.status, await resp.read()


async def build_store(store: SqlStore, refunds: int, backlog: int, query_batches: int, now: float) -> None:
    batch_ids = await synthetic.add_batches(store, max(1, refunds // BATCH_SIZE), now=now)
    await synthetic.add_refunds(store, refunds, state="failed", report_state="dead", now=now, batch_ids=batch_ids)
    if query_batches:
        due = await synthetic.add_batches(store, query_batches, state="submitted", now=now, next_query_at=now)
        await synthetic.add_refunds(store, query_batches * BATCH_SIZE, state="submitted", report_state="none",
                                    now=now, batch_ids=due)
    await synthetic.add_refunds(store, backlog, state="received", report_state="none", now=now - 3600)


def shop_server(port: int) -> None:
    """The shop the reports go to (`--shop-server PORT`): a `SimulatedShop`, in a process of its own."""
    app = SimulatedShop(SECRET).app()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop())


@contextlib.asynccontextmanager
async def peers(http: aiohttp.ClientSession) -> AsyncIterator[tuple[str, str]]:
    """The Alipay sandbox and the shop, each in a process of its own (their work is not the adapter's); yields
    the gateway URL and the shop's base URL."""
    sandbox_port, shop_port = free_port(), free_port()
    commands = [
        (*CLI, "sandbox", "--port", str(sandbox_port), "--partner", PARTNER, "--md5-key", MD5_KEY,
         "--time-scale", "1000"),
        (sys.executable, __file__, "--shop-server", str(shop_port)),
    ]
    processes = [await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
                 for command in commands]
    try:
        shop_url = f"http://127.0.0.1:{shop_port}"
        for url in (f"http://127.0.0.1:{sandbox_port}/", shop_url + "/"):
            await wait_until(lambda url=url: _answers(http, url), within=60, what=f"{url} answering")
        yield f"http://127.0.0.1:{sandbox_port}/gateway.do", shop_url
    finally:
        for process in processes:
            process.terminate()
            await process.wait()


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as resp:
            return resp.status < 600
    except aiohttp.ClientError:
        return False


def large_webhook(max_body: int) -> tuple[dict[str, str], bytes]:
    """A validly signed refund webhook as large as the body limit allows (a huge `reason`)."""
    payload = {"refund_id": "huge", "order_id": "o-huge", "trade_no": "2026112522000000000001", "amount": "1.00",
               "currency": "CNY", "paid_amount": "100.00", "reason": ""}
    room = max_body - len(json.dumps(payload)) - 64
    payload["reason"] = "x" * room
    return signed_generic_webhook(SECRET, payload, "msg-huge")


def many_ids_body(max_body: int) -> bytes:
    """{"refund_ids": [1, 2, ...]}: as many ids as the body limit allows."""
    ids: list[str] = []
    size, n = 20, 0
    while size < max_body - 16:
        n += 1
        ids.append(str(n))
        size += len(ids[-1]) + 2
    return ('{"refund_ids": [' + ", ".join(ids) + "]}").encode()


def scenarios(bench: Bench, sizes: dict[str, int]) -> list[tuple[str, Callable[[], Awaitable[str | None]]]]:
    """(name, run): each run returns None when its answer is right, else what is wrong."""
    ctx, store = bench.ctx, bench.ctx.store

    def expect(status: int, wanted: int = 200) -> str | None:
        return None if status == wanted else f"HTTP {status}"

    async def get(path: str) -> str | None:
        status, _ = await bench.call("GET", path)
        return expect(status)

    ids_bodies = {size: many_ids_body(size) for size in (MAX_RETRY_BODY_BYTES, bench.max_body)}  # built unmeasured

    async def retry_ids(size: int) -> str | None:
        """A list of ids `size` bytes long: requeued, or refused as too large (413) without being parsed."""
        status, body = await bench.call("POST", "/-/dead-letters/retry", data=ids_bodies[size],
                                        headers={"content-type": "application/json"})
        if status == 413:
            return None
        return expect(status) or (None if json.loads(body)["requeued"] > 0 else body.decode())

    async def retry_all() -> str | None:
        status, body = await bench.call("POST", "/-/dead-letters/retry")
        dead = (await store.counts())["reports"].get("dead", 0)
        return expect(status) or (None if dead == 0 else f"{dead} dead letters left: {body.decode()}")

    async def reporter() -> str | None:
        for _ in range(4):
            await report_once(ctx)
        return None

    async def batcher() -> str | None:
        made = [await batch_once(ctx) for _ in range(3)]
        return None if all(made) else f"batches made: {made}"

    async def reconciler() -> str | None:
        return None if await query_once(ctx) else "no batch queried"

    async def notify() -> str | None:
        """A batch of 1000 submitted to the sandbox, its notify of 1000 results received and recorded."""
        pending = (await store.list_batches(limit=1000, state=BatchState.PENDING))[-1]  # the next one submitted
        if not await submit_once(ctx):
            return "nothing submitted"

        async def completed() -> bool:
            batch = await store.get_batch(pending.id)
            return batch is not None and batch.state is BatchState.COMPLETED

        try:
            await wait_until(completed, within=60, what="the 1000-detail notify recorded")
        except TimeoutError as exc:
            batch = await store.get_batch(pending.id)
            return f"{exc} (batch {pending.id}: {batch and batch.state})"
        return None

    async def forged_notify(batch_no: str) -> str | None:
        """A notify of `batch_no` whose 1 MiB are %-escapes: about a second to decode in pure Python."""
        head = f"notify_type=batch_refund_notify&notify_id=forged&batch_no={batch_no}&result_details=".encode()
        body = head + b"%E4" * ((bench.max_body - len(head)) // 3)
        status, text = await bench.call("POST", "/alipay/notify", data=body,
                                        headers={"content-type": "application/x-www-form-urlencoded"})
        return None if text == b"fail" else f"HTTP {status} {text[:80]!r}"

    async def known_batch_no_then(forge: Callable[[str], Awaitable[str | None]]) -> str | None:
        (batch,) = await store.list_batches(limit=1, state=BatchState.COMPLETED)
        return await forge(batch.batch_no)

    signed = large_webhook(bench.max_body)

    async def webhook() -> str | None:
        headers, body = signed
        status, text = await bench.call("POST", f"/webhooks/generic/{SHOP}", data=body, headers=headers)
        return None if status < 500 else f"HTTP {status} {text[:200]!r}"

    async def idle() -> None:
        await asyncio.sleep(sizes["idle_s"])

    return [
        ("GET /healthz (the first request: warm-up)", lambda: get("/healthz")),
        (f"idle for {sizes['idle_s']} s: the machine's own noise", idle),
        ("GET /-/stats", lambda: get("/-/stats")),
        ("GET /metrics", lambda: get("/metrics")),
        ("GET /-/refunds?limit=1000", lambda: get("/-/refunds?limit=1000")),
        ("GET /-/refunds?state=received&limit=1000", lambda: get("/-/refunds?state=received&limit=1000")),
        ("GET /-/refunds?report_state=pending", lambda: get("/-/refunds?report_state=pending")),
        ("GET /-/batches?limit=1000", lambda: get("/-/batches?limit=1000")),
        (f"POST /-/dead-letters/retry (ids: a {MAX_RETRY_BODY_BYTES // 1024} KiB list)",
         lambda: retry_ids(MAX_RETRY_BODY_BYTES)),
        ("POST /-/dead-letters/retry (ids: a 1 MiB list)", lambda: retry_ids(bench.max_body)),
        (f"POST /-/dead-letters/retry (all {sizes['refunds']:,} dead letters)", retry_all),
        ("reporter: 4 steps over the requeued outbox", reporter),
        (f"batcher: 3 batches from a {sizes['backlog']:,} backlog", batcher),
        ("submit + notify of a 1000-detail batch", notify),
        (f"reconciler: one step, {sizes['query_batches']} batches of 1000 due", reconciler),
        ("POST /alipay/notify (forged, unknown batch, 1 MiB of %-escapes)", lambda: forged_notify("nothing")),
        ("POST /alipay/notify (forged, a real batch_no, 1 MiB of %-escapes)",
         lambda: known_batch_no_then(forged_notify)),
        ("POST /webhooks/generic (signed, 1 MiB)", webhook),
    ]


def app_config(folder: Path, store_url: str, port: int, gateway_url: str, shop_url: str) -> Any:
    shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
    raw = local_config(folder / "unused.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                       platforms={"generic": {"shops": [shop]}})
    raw["store"] = {"url": store_url}
    return parse_config(raw, env={})


async def run(store_url: str | None, sizes: dict[str, int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stalls-") as tmp:
        folder = Path(tmp)
        store_url = store_url or f"sqlite:///{folder / 'refunds.db'}"
        builder = store_from_url(store_url)
        assert isinstance(builder, SqlStore)
        await builder.open()
        started = time.perf_counter()
        await build_store(builder, sizes["refunds"], sizes["backlog"], sizes["query_batches"], time.time())
        built_s = time.perf_counter() - started
        await builder.close()
        port = free_port()
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http,
            peers(http) as (gateway_url, shop_url),
        ):
            config = app_config(folder, store_url, port, gateway_url, shop_url)
            app = create_app(config, run_engine=False)
            async with serve(app, port=port) as url:
                settle_heap()  # as `serve` does once started: the heap's start-up objects frozen
                bench = Bench(url, http, app[ENGINE], config.server.max_body_bytes)
                rows, wrong = [], []
                for name, scenario in scenarios(bench, sizes):
                    async with LoopLag() as lag, HealthProbe(http, url + "/healthz") as probe:
                        started = time.perf_counter()
                        problem = await scenario()
                        took = time.perf_counter() - started
                    rows.append({"scenario": name, "loop_stall_ms": round(lag.longest * 1000, 1),
                                 "longest_gc_ms": round(lag.longest_gc * 1000, 1),
                                 "healthz_ms": round(probe.longest * 1000, 1), "took_ms": round(took * 1000, 1)})
                    if problem:
                        wrong.append(f"{name}: {problem}")
        backend = store_url.split(":", 1)[0]
        return {"backend": backend, **sizes, "build_s": round(built_s, 1), "scenarios": rows, "wrong": wrong}


def print_table(summary: dict[str, Any]) -> None:
    print(f"{summary['backend']}: {summary['refunds']:,} dead letters, {summary['backlog']:,} waiting, "
          f"{summary['query_batches']} batches due for a query (built in {summary['build_s']} s)")
    print(f"{'scenario':<68} {'loop stall':>11} {'healthz':>9} {'longest GC':>11} {'took':>9}")
    for row in summary["scenarios"]:
        print(f"{row['scenario']:<68} {row['loop_stall_ms']:>8.1f} ms {row['healthz_ms']:>6.1f} ms "
              f"{row['longest_gc_ms']:>8.1f} ms {row['took_ms']:>6.0f} ms")
    for problem in summary["wrong"]:
        print("WRONG:", problem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refunds", type=int, default=1_000_000, help="dead letters in the store")
    parser.add_argument("--backlog", type=int, default=100_000, help="received refunds waiting for a batch")
    parser.add_argument("--query-batches", type=int, default=20, help="submitted batches of 1000 due for a query")
    parser.add_argument("--idle-seconds", type=int, default=10, help="how long to sample the idle loop first")
    parser.add_argument("--store-url", help="default: a temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    parser.add_argument("--shop-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shop_server:
        shop_server(args.shop_server)
        return
    sizes = {"refunds": args.refunds, "backlog": args.backlog, "query_batches": args.query_batches,
             "idle_s": args.idle_seconds}
    loop = new_event_loop()
    try:
        summary = loop.run_until_complete(run(args.store_url, sizes))
    finally:
        loop.close()
    print_table(summary)
    if args.json:
        print(json.dumps(summary))
    sys.exit(1 if summary["wrong"] else 0)


if __name__ == "__main__":
    main()
