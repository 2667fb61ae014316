"""The kill loop: `refund-adapter serve`, as real processes, SIGKILLed at random moments while signed webhooks
keep arriving, and restarted. The Alipay sandbox and a shop run in this process and outlive every kill, as the
real ones would; the shop re-sends each webhook the adapter did not acknowledge, as a platform does.

Everything random comes from the seed, so a run that found a defect can be repeated with it: the kills (which
instance, after how long, which crash point) from `random.Random(seed)`, and each refund's webhook (the instance
each send goes to, whether it is replayed) from a generator of its own, `random.Random(f"{seed}/{index}")`. The
processes' own timing is not reproducible, so neither is where exactly a kill lands. A kill at a
random time mostly lands where the process waits; so half of the restarts also arm one of the named crash points
(`refund_adapter.failpoints`), drawn at random, where the process SIGKILLs itself if it gets there first. After the
last kill the run waits until every result is recorded as delivered, stops the instances with SIGTERM, and
checks the ledgers on both sides (`KillLoopRun.problems`). Used by tests/test_kill_loop.py and bench/kill_loop.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from refund_adapter_generic.shop import SimulatedShop

from . import failpoints
from .engine.reporter import REPORTS_PER_STEP
from .sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from .testing import ADMIN_HEADERS, free_port, local_config, serve, wait_until

PARTNER = "2088101122136241"
MD5_KEY = "killloopkey0123456789abcdefghijk"
SECRET = "whsec_a2lsbC1sb29wLXNlY3JldC1ieXRlcyE="
SHOP = "s1"
SERVE = (sys.executable, "-c", "from refund_adapter.cli import main; main()", "serve")
LIFE_SECONDS = (0.2, 1.6)  # how long an instance runs before its next kill, drawn uniformly
RESEND_SECONDS = 0.2  # a webhook not acknowledged is sent again this much later
REPLAY_SHARE = 0.05  # of the acknowledged webhooks, sent once more (a platform's duplicate delivery)
IN_FLIGHT = 16  # webhooks sent at once
STARTUP_SECONDS = 60.0  # an instance not healthy by then fails the run (a shared machine can be slow)


def trade_no(index: int) -> str:
    return f"2026120721{index:010d}"


def payload(index: int) -> dict[str, str]:
    """Refund `index`: one per trade, so the sandbox's ledger shows each refund paid at most once."""
    return {"refund_id": f"r{index}", "order_id": f"o{index}", "trade_no": trade_no(index), "amount": "12.50",
            "currency": "CNY", "reason": "kill loop"}


@dataclass
class ServeProcess:
    """One `serve` process on a fixed port (Alipay's notifies for its batches come back to that port)."""

    config: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, crash_at: str | None = None) -> None:
        """Start it (to SIGKILL itself at the crash point `crash_at`, if given) and wait until it answers /healthz
        or died at that point; a process that exits otherwise fails with its stderr."""
        env = {key: value for key, value in os.environ.items() if key != failpoints.ENV}
        if crash_at:
            env[failpoints.ENV] = crash_at
        process = self.process = await asyncio.create_subprocess_exec(
            *SERVE, "--config", str(self.config), "--log-level", "warning",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        stderr = asyncio.ensure_future(process.stderr.read()) if process.stderr else None

        async def healthy() -> bool:
            if crash_at and process.returncode == -signal.SIGKILL:
                return True  # it reached its crash point already
            if process.returncode is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {await stderr if stderr else b''!r}")
            try:
                async with aiohttp.ClientSession() as session, session.get(self.url + "/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(healthy, within=STARTUP_SECONDS, what=f"serve on port {self.port} healthy")

    async def kill(self) -> None:
        """SIGKILL (unless it died already): no handler runs, nothing is flushed, as in a power cut."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def died_within(self, seconds: float) -> bool:
        """Whether it exits (at its crash point) within `seconds`."""
        assert self.process is not None
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> int:
        """SIGTERM; the exit status (0 when it drained and stopped cleanly)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), STARTUP_SECONDS)


@dataclass
class KillLoopCounts:
    """What a run did and what each side's ledger says; `line()` is what the test and the bench print."""

    seed: int
    refunds: int
    instances: int
    kills: int = 0
    at_crash_points: int = 0  # kills where the process reached the crash point it was armed with
    webhooks_sent: int = 0  # every POST, first sends and re-sends
    unanswered: int = 0  # POSTs without an answer (the instance died or was down): each was sent again
    replays: int = 0  # acknowledged webhooks sent once more
    acknowledged: int = 0  # distinct refunds answered 2xx
    paid: int = 0  # details with SUCCESS in the sandbox's ledger
    batches: int = 0  # batches in the sandbox's ledger
    resends: int = 0  # requests that reused a batch_no (answered DUPLICATE_BATCH_NO)
    reported: int = 0  # distinct refunds whose result the shop acted on
    deliveries: int = 0  # result callbacks the shop received, repeats included
    repeats: int = 0  # deliveries of a result the shop had already acted on
    seconds: float = 0.0

    def line(self) -> str:
        return ", ".join(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}"
                         for name, value in asdict(self).items())


@dataclass
class KillLoopRun:
    counts: KillLoopCounts
    ledger: list[dict[str, Any]]  # GET /sandbox/batches
    trades: list[dict[str, Any]]  # GET /sandbox/trades
    stats: dict[str, dict[str, int]]  # the adapter's GET /-/stats at the end
    shop: SimulatedShop
    acknowledged: set[str] = field(default_factory=set)  # refund ids
    refusals: Counter[int] = field(default_factory=Counter)  # webhooks answered, but not 2xx, by status

    def problems(self) -> list[str]:
        """Every broken promise, in words; empty when each refund was paid at most once (exactly once when
        acknowledged), reported once, and the counts agree."""
        found = [f"{n} webhooks answered {status}" for status, n in sorted(self.refusals.items())]
        counts = self.counts
        paid = Counter(detail["trade_no"] for batch in self.ledger for detail in batch["details"])
        found += [f"trade {trade} is in {n} batches" for trade, n in sorted(paid.items()) if n > 1]
        expected = {trade_no(int(refund_id[1:])) for refund_id in self.acknowledged}
        found += [f"acknowledged refund of trade {trade} was never paid" for trade in sorted(expected - paid.keys())]
        found += [f"trade {trade} was paid but never acknowledged" for trade in sorted(paid.keys() - expected)]
        codes = Counter(detail["code"] for batch in self.ledger for detail in batch["details"])
        if set(codes) != {"SUCCESS"}:
            found.append(f"detail codes {dict(codes)}, expected only SUCCESS")
        found += [f"trade {t['trade_no']} refunded {t['refund_count']} times" for t in self.trades
                  if t["refund_count"] > 1]
        found += [f"batch {b['batch_no']} sent again with other details" for b in self.ledger
                  if any(not resend["same_details"] for resend in b["resends"])]
        # A batch_no is sent again only by an instance that took over a batch whose sender died meanwhile.
        if counts.resends > counts.kills:
            found.append(f"{counts.resends} batches sent again for {counts.kills} kills")
        if set(self.shop.results) != self.acknowledged:
            found.append(f"the shop acted on {len(self.shop.results)} results for {counts.acknowledged} refunds")
        found += [f"refund {r['refund_id']} reported {r['status']}" for r in self.shop.results.values()
                  if r["status"] != "succeeded"]
        found += [f"a repeated report changed: {first} then {then}" for first, then in self.shop.changed_repeats]
        # A result delivered but not yet recorded when the process died is delivered again (at most one
        # reporter round, REPORTS_PER_STEP results, per instance and kill); the shop acts on it once.
        if counts.repeats > counts.kills * REPORTS_PER_STEP:
            found.append(f"{counts.repeats} repeated reports for {counts.kills} kills")
        wanted = {"refunds": {"succeeded": counts.acknowledged}, "reports": {"delivered": counts.acknowledged}}
        if {key: self.stats.get(key) for key in wanted} != wanted:
            found.append(f"the adapter's stats {self.stats} differ from {wanted}")
        if not counts.acknowledged == counts.paid == counts.reported == counts.refunds:
            found.append("acknowledged, paid, reported and refunds differ")
        return found


def adapter_config(port: int, store_url: str, gateway_url: str, shop_url: str, folder: Path) -> Path:
    """An instance's config file: fast batching, reporting and reconciling, so a run ends soon after the kills."""
    config = local_config(
        folder / "unused.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
        platforms={"generic": {"shops": [{"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback",
                                          "alipay_account": "main"}]}},
        alipay_query={"first_query_after_seconds": 2, "interval_seconds": 0.5,
                      "schedule_seconds": [1, 2, 4, 8, 16, 32, 64, 128]},
        platform_poll={"interval_seconds": 0.5},
        engine={"lease_seconds": 5},
        http={"connect_timeout_seconds": 2, "total_timeout_seconds": 2},
    )
    config["store"] = {"url": store_url}
    path = folder / f"config-{port}.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


@contextlib.asynccontextmanager
async def _world(refunds: int) -> AsyncIterator[tuple[RunningSandbox, SimulatedShop, str]]:
    """The sandbox, seeded with one paid trade per refund, and the shop, served for the run."""
    trades = [TradeSeed(trade_no=trade_no(i), amount=Decimal("100.00")) for i in range(refunds)]
    shop = SimulatedShop(SECRET)
    config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades)
    async with run_sandbox(config) as sandbox, serve(shop.app()) as shop_url:
        yield sandbox, shop, shop_url


class _Platform:
    """Sends each refund's webhook, paced over the run, each time to an instance drawn at random; re-sends what
    is not acknowledged until it is, and replays a few that were."""

    def __init__(self, shop: SimulatedShop, instances: list[ServeProcess], counts: KillLoopCounts,
                 pace: float, seed: int) -> None:
        self.shop, self.instances, self.counts, self.pace, self.seed = shop, instances, counts, pace, seed
        self.acknowledged: set[str] = set()
        self.refusals: Counter[int] = Counter()  # non-2xx answers by status

    async def _send(self, session: aiohttp.ClientSession, index: int, rng: random.Random) -> bool:
        """One POST to an instance drawn at random; whether it was acknowledged."""
        target = self.instances[rng.randrange(len(self.instances))]
        self.counts.webhooks_sent += 1
        try:
            status = await self.shop.send_refund(session, target.url, SHOP, payload(index))
        except (aiohttp.ClientError, TimeoutError):
            self.counts.unanswered += 1
            return False
        if not 200 <= status < 300:
            self.refusals[status] += 1  # an answer, but not an acknowledgement: never expected here
        return 200 <= status < 300

    async def _deliver(self, session: aiohttp.ClientSession, index: int) -> None:
        rng = random.Random(f"{self.seed}/{index}")
        replay = rng.random() < REPLAY_SHARE  # drawn first: it must not depend on how often the send failed
        while not await self._send(session, index, rng):  # noqa: ASYNC110 - re-sent until acknowledged, as platforms do
            await asyncio.sleep(RESEND_SECONDS)
        self.acknowledged.add(payload(index)["refund_id"])
        self.counts.acknowledged = len(self.acknowledged)
        if replay:  # platforms deliver some webhooks twice: it must change nothing
            await asyncio.sleep(RESEND_SECONDS)
            self.counts.replays += 1
            await self._send(session, index, rng)

    async def run(self) -> None:
        slots = asyncio.Semaphore(IN_FLIGHT)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as group:
            for index in range(self.counts.refunds):
                await slots.acquire()
                task = group.create_task(self._deliver(session, index))
                task.add_done_callback(lambda _: slots.release())
                await asyncio.sleep(self.pace)


async def _kill_and_restart(victims: list[ServeProcess], kills: int, counts: KillLoopCounts,
                            rng: random.Random, on_kill: Callable[[str], None]) -> None:
    armed: dict[int, str | None] = {}
    for kill in range(1, kills + 1):
        victim = victims[rng.randrange(len(victims))]
        life = rng.uniform(*LIFE_SECONDS)
        crash_at = armed.get(victim.port)
        by_itself = await victim.died_within(life)
        if by_itself and not crash_at:
            raise RuntimeError(f"serve on port {victim.port} exited by itself, unarmed")
        await victim.kill()
        counts.kills += 1
        counts.at_crash_points += by_itself
        how = f"at {crash_at}" if by_itself else f"after {life:.2f}s"
        on_kill(f"kill {kill}/{kills} {how}: port {victim.port}, {counts.acknowledged} acknowledged so far")
        # The last restart is left unarmed, so that the run can settle.
        crash_at = armed[victim.port] = rng.choice(failpoints.ALL) if kill < kills and rng.random() < 0.5 else None
        await victim.start(crash_at)


async def _get_json(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None) -> Any:
    async with session.get(url, headers=headers) as resp:
        resp.raise_for_status()
        return await resp.json()


async def run_kill_loop(
    folder: Path,
    *,
    refunds: int,
    kills: int,
    seed: int,
    store_url: str | None = None,
    instances: int = 1,
    victims: int = 1,
    settle_seconds: float = 120.0,
    on_kill: Callable[[str], None] = lambda _: None,
) -> KillLoopRun:
    """Run `instances` serve processes on one store (SQLite in `folder` unless `store_url`), send `refunds`
    refunds, SIGKILL one of the first `victims` instances `kills` times at random moments meanwhile, then wait
    (up to `settle_seconds`) until every result is delivered."""
    rng = random.Random(seed)
    counts = KillLoopCounts(seed=seed, refunds=refunds, instances=instances)
    started = time.monotonic()
    store_url = store_url or f"sqlite:///{folder / 'refunds.db'}"
    async with _world(refunds) as (sandbox, shop, shop_url):
        ports = [free_port() for _ in range(instances)]
        processes = [ServeProcess(adapter_config(port, store_url, sandbox.url, shop_url, folder), port)
                     for port in ports]
        try:
            for process in processes:
                await process.start()
            mean_life = sum(LIFE_SECONDS) / 2
            platform = _Platform(shop, processes, counts, pace=max(kills, 1) * mean_life / refunds, seed=seed)
            await asyncio.gather(platform.run(),
                                 _kill_and_restart(processes[:victims], kills, counts, rng, on_kill))

            async with aiohttp.ClientSession() as session:
                async def all_delivered() -> bool:
                    stats = await _get_json(session, processes[0].url + "/-/stats", ADMIN_HEADERS)
                    return stats["reports"].get("delivered", 0) >= refunds

                await wait_until(all_delivered, within=settle_seconds, interval=0.2, what="every result delivered")
                stats = await _get_json(session, processes[0].url + "/-/stats", ADMIN_HEADERS)
                ledger = await _get_json(session, sandbox.base_url + "/sandbox/batches")
                trades = await _get_json(session, sandbox.base_url + "/sandbox/trades")
        finally:
            codes = [await process.stop() if process.running else None for process in processes]
        if any(code not in (0, None) for code in codes):
            raise RuntimeError(f"serve exit statuses after SIGTERM: {codes}")
    counts.paid = sum(1 for batch in ledger for detail in batch["details"] if detail["code"] == "SUCCESS")
    counts.batches = len(ledger)
    counts.resends = sum(len(batch["resends"]) for batch in ledger)
    counts.reported = len(shop.results)
    counts.deliveries = shop.deliveries
    counts.repeats = shop.repeats
    counts.seconds = time.monotonic() - started
    return KillLoopRun(counts, ledger, trades, stats, shop, platform.acknowledged, platform.refusals)
