"""`wrk` as the load generator of `bench/ingest.py`: signed requests written ahead, sent for a fixed time.

wrk's Lua has no HMAC, so every request (a `generic` webhook signed per Standard Webhooks, its own refund id and
trade number) is written in full beforehand, as raw HTTP/1.1, to one file per wrk thread: each record is its length
in 8 ASCII digits and then its bytes. The script hands wrk the next record per request (no formatting in Lua: wrk
stays near 0.2 of a core at 13,000 requests/s) and starts the file again when it runs out (`wraps` says so: the
requests after that are repeats). Its `done` prints one JSON line: requests answered, non-2xx answers, socket
errors, latency percentiles and the records sent.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

RECORD_LENGTH_DIGITS = 8
TIMEOUT_S = 10  # wrk's default of 2 s would count a slow answer as an error, not as latency

SCRIPT = """
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  file = assert(io.open(args[1] .. "." .. id, "rb"))
  sent, wraps = 0, 0
end

function request()
  local size = file:read(RECORD_DIGITS)
  if not size then
    file:seek("set", 0)
    wraps = wraps + 1
    size = file:read(RECORD_DIGITS)
  end
  sent = sent + 1
  return file:read(tonumber(size))
end

function done(summary, latency, requests)
  local sent, wraps = 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent")
    wraps = wraps + thread:get("wraps")
  end
  local e = summary.errors
  io.write(string.format(
    '\\nWRK-JSON {"answered": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "sent": %d, "wraps": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, sent, wraps))
end
""".replace("RECORD_DIGITS", str(RECORD_LENGTH_DIGITS))


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured. `answered` counts every response; `acknowledged` the 2xx among them."""

    answered: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    sent: int  # records handed to wrk (answered, errors, and those in flight when the time was up)
    wraps: int  # times a thread's file ran out and started again: repeats were sent
    cpu_s: float  # wrk's own CPU (user + system)

    @property
    def acknowledged(self) -> int:
        return self.answered - self.non_2xx

    @property
    def requests_per_s(self) -> float:
        return self.answered / self.duration_s


def available() -> bool:
    return shutil.which("wrk") is not None


def write_records(prefix: Path, threads: int, requests: Iterable[bytes]) -> int:
    """Spread raw requests over one file per thread (`prefix.0`, `prefix.1`, ...), in turn; returns how many."""
    files = [open(f"{prefix}.{n}", "wb") for n in range(threads)]  # noqa: SIM115 - closed below
    count = 0
    try:
        for count, raw in enumerate(requests, 1):
            files[count % threads].write(b"%0*d" % (RECORD_LENGTH_DIGITS, len(raw)) + raw)
    finally:
        for file in files:
            file.close()
    return count


def raw_post(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 POST on a kept-alive connection, as bytes."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def run(url: str, records: Path, duration_s: float, connections: int, threads: int, folder: Path,
              on_start: Callable[[int], None] = lambda pid: None) -> WrkResult:
    """Run wrk against `url` with the records at `records` (the prefix given to `write_records`).
    `on_start(pid)` is called once wrk is started."""
    script = folder / "ingest.lua"
    script.write_text(SCRIPT, "utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={TIMEOUT_S}s",
        "-s", str(script), url, "--", str(records),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    on_start(process.pid)
    output, _ = await process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child that exited meanwhile
    text = output.decode(errors="replace")
    line = next((line for line in text.splitlines() if line.startswith("WRK-JSON ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (status {process.returncode}):\n{text[-2000:]}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    return WrkResult(
        answered=data["answered"], duration_s=data["duration_us"] / 1e6, non_2xx=data["non_2xx"],
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        sent=data["sent"], wraps=data["wraps"],
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
