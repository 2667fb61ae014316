"""`wrk` as the load generator of `bench/ingest.py`: signed requests written ahead, sent for a fixed time.

wrk's Lua has no HMAC, so every request (a `generic` webhook signed per Standard Webhooks, its own refund id and
trade number) is written in full beforehand, as raw HTTP/1.1, to one file per wrk thread: each record is its length
in 8 ASCII digits and then its bytes. The script hands wrk the next record per request (no formatting in Lua: wrk
stays near 0.2 of a core at 13,000 requests/s) and starts the file again when it runs out (`wraps` says so: the
requests after that are repeats). Its `done` prints one JSON line: requests answered, non-2xx answers, socket
errors, latency percentiles and the records sent.

`once=True` sends each record once instead (a burst, for bench/e2e.py): a thread whose file has run out sends
`GET IDLE_PATH` (a 404) on its free connections until every record it sent is answered, then stops and says so
on stdout; once every thread has, wrk is interrupted (its main thread would sleep out the duration) and prints its
summary. The records' own answers are counted apart (`records_answered`, `records_2xx`).
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

RECORD_LENGTH_DIGITS = 8
TIMEOUT_S = 10  # wrk's default of 2 s would count a slow answer as an error, not as latency
IDLE_PATH = "/-/bench-idle"  # what a once-only thread asks for while its last records are answered: a 404

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
  sent, wraps, answered, ok = 0, 0, 0, 0
  once = args[2] == "once"
  -- wrk calls the first thread's request() once before it starts, to check what it returns, and sends nothing
  verifying = id == 0
  records = 0
  if once then
    for size in function() return file:read(RECORD_DIGITS) end do
      file:seek("cur", tonumber(size))
      records = records + 1
    end
    file:seek("set", 0)
  end
end

function request()
  if once and verifying then
    verifying = false
    return wrk.format("GET", "IDLE_PATH")
  end
  local size = file:read(RECORD_DIGITS)
  if not size and once then
    return wrk.format("GET", "IDLE_PATH")
  end
  if not size then
    file:seek("set", 0)
    wraps = wraps + 1
    size = file:read(RECORD_DIGITS)
  end
  sent = sent + 1
  return file:read(tonumber(size))
end

function done(summary, latency, requests)
  local sent, wraps, answered, ok = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent")
    wraps = wraps + thread:get("wraps")
    answered = answered + thread:get("answered")
    ok = ok + thread:get("ok")
  end
  local e = summary.errors
  io.write(string.format(
    '\\nWRK-JSON {"answered": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "sent": %d, "wraps": %d, ' ..
    '"records_answered": %d, "records_2xx": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, sent, wraps, answered, ok))
end
""".replace("RECORD_DIGITS", str(RECORD_LENGTH_DIGITS)).replace("IDLE_PATH", IDLE_PATH)
# Only in a once-only run: with a `response` function wrk reads every answer's headers and body.
ONCE_RESPONSE = """
function response(status, headers, body)
  if status ~= 404 then
    answered = answered + 1
    if status >= 200 and status < 300 then ok = ok + 1 end
  end
  if answered >= records and not finished then
    finished = true
    io.write("WRK-THREAD-DONE\\n")
    io.flush()
    wrk.thread:stop()
  end
end
"""


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
    records_answered: int  # once: the records' answers (the idle requests' not counted)
    records_2xx: int  # once: the 2xx among them

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


async def _output(process: asyncio.subprocess.Process, threads: int | None) -> bytes:
    """wrk's whole output; with `threads`, it is interrupted (SIGINT: it then prints its summary) once that many
    threads said they were done."""
    assert process.stdout is not None
    lines: list[bytes] = []
    while line := await process.stdout.readline():
        lines.append(line)
        if threads is not None and line.startswith(b"WRK-THREAD-DONE"):
            threads -= 1
            if threads == 0:
                process.send_signal(signal.SIGINT)
    await process.wait()
    return b"".join(lines)


async def run(url: str, records: Path, duration_s: float, connections: int, threads: int, folder: Path,
              on_start: Callable[[int], None] = lambda pid: None, *, once: bool = False) -> WrkResult:
    """Run wrk against `url` with the records at `records` (the prefix given to `write_records`), for `duration_s`
    or, `once`, until each record is answered (`duration_s` is then a limit). `on_start(pid)` is called once wrk
    is started."""
    script = folder / "ingest.lua"
    script.write_text(SCRIPT + (ONCE_RESPONSE if once else ""), "utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={TIMEOUT_S}s",
        "-s", str(script), url, "--", str(records), "once" if once else "loop",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    on_start(process.pid)
    output = await _output(process, threads if once else None)
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
        sent=data["sent"], wraps=data["wraps"], records_answered=data["records_answered"],
        records_2xx=data["records_2xx"],
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
