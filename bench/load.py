"""The load: wrk (found, or installed from apt), its Lua script and JSON output; and a paced
asyncio sender for runs at a fixed offered rate (wrk2 is not packaged).

Every request is the same signed body with a fresh `X-GitHub-Delivery`, so dedupe never
short-circuits the product. The Lua `done` hook prints one line `BENCH_JSON {...}` that
`parse_wrk` reads: more reliable than scraping wrk's human output.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

MARK = "BENCH_JSON "
CONNECTIONS = 32


class LoadError(Exception):
    """The load generator cannot run, or a run went wrong."""


@dataclass(frozen=True, kw_only=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect, read, write, timeout and HTTP status >= 400

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def ensure_wrk() -> str:
    """The path of wrk, installing the apt package when it is missing (with sudo when not
    root). LoadError with the reason when it cannot be had."""
    found = shutil.which("wrk")
    if found:
        return found
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise LoadError("wrk is not installed and there is no sudo to apt-get install it")
        prefix = ["sudo", "-n"]
    install = [*prefix, "apt-get", "install", "-y", "wrk"]
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # the package lists may be missing or old: update once, retry
        subprocess.run([*prefix, "apt-get", "update"], capture_output=True, check=False)
        done = subprocess.run(install, capture_output=True, text=True, check=False)
    found = shutil.which("wrk")
    if done.returncode == 0 and found:
        return found
    reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise LoadError(f"wrk is not installed and `apt-get install -y wrk` failed: {reason}")


def lua_script(*, body_file: Path, headers: Mapping[str, str], prefix: str, limit: int) -> str:
    """The wrk script: POST the body from `body_file` with `headers` and a unique delivery id;
    with `limit` > 0 each thread stops after that many responses; `done` prints JSON."""
    header_lines = "\n".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()
    )
    stop = ""
    if limit > 0:
        # wrk's main thread sleeps for the whole -d, so a thread that stops leaves wrk
        # running: leave the process instead (no `done` then); the exit code says whether
        # more than 1% of the answers were not 2xx
        stop = f"""
local answered = 0
local bad = 0
function response(status, headers, body)
  answered = answered + 1
  if status >= 300 then bad = bad + 1 end
  if answered >= {limit} then
    io.write(string.format("{MARK}{{\\"answered\\": %d, \\"bad\\": %d}}\\n", answered, bad))
    io.flush()
    os.exit(bad * 100 > answered and 1 or 0)
  end
end
"""
    return f"""
local file = assert(io.open({json.dumps(str(body_file))}, "rb"))
wrk.body = file:read("*a")
file:close()
wrk.method = "POST"
{header_lines}
local counter = 0
local threads = {{}}
local number = 0

function setup(thread)
  number = number + 1
  thread:set("tid", number)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = {json.dumps(prefix)} .. "-" .. tid .. "-" .. counter
  return wrk.format()
end
{stop}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{MARK}{{"requests": %d, "duration_us": %d, "errors": {{"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}}, "latency_us": {{"p50": %d, "p99": %d, ' ..
    '"max": %d}}}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def parse_wrk(output: str) -> WrkResult:
    """The result in wrk's output (the line the `done` hook printed); LoadError if none."""
    for line in output.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK) :])
            errors = data["errors"]
            return WrkResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["latency_us"]["p50"] / 1000,
                p99_ms=data["latency_us"]["p99"] / 1000,
                errors=sum(
                    int(errors[k]) for k in ("connect", "read", "write", "status", "timeout")
                ),
            )
    raise LoadError(f"no {MARK.strip()} line in wrk's output:\n{output[-2000:]}")


@dataclass(frozen=True, kw_only=True)
class Load:
    """How to load a server: wrk's path and the script's inputs."""

    wrk: str
    body_file: Path
    headers: Mapping[str, str]
    workdir: Path

    def start(
        self, url: str, *, seconds: float, connections: int = CONNECTIONS, limit: int = 0
    ) -> subprocess.Popen[str]:
        """wrk running against `url` (in the background)."""
        prefix = f"{os.getpid()}-{time.monotonic_ns()}"
        script = self.workdir / f"load-{prefix}.lua"
        script.write_text(
            lua_script(body_file=self.body_file, headers=self.headers, prefix=prefix, limit=limit)
        )
        command = [
            self.wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def run(self, url: str, *, seconds: float, connections: int = CONNECTIONS) -> WrkResult:
        """One wrk run to its end, parsed."""
        return finish(self.start(url, seconds=seconds, connections=connections))

    def offer(self, url: str, count: int, *, connections: int = CONNECTIONS) -> None:
        """Send until `count` answers came back (a few more may be in flight and still be
        stored); LoadError if wrk fails or more than 1% of the answers were not 2xx."""
        process = self.start(url, seconds=86_400, connections=connections, limit=count)
        output, _ = process.communicate()
        if process.returncode != 0:
            raise LoadError(
                f"wrk offering {count} exited with {process.returncode}:\n{output[-2000:]}"
            )


def finish(process: subprocess.Popen[str]) -> WrkResult:
    """Wait for a started wrk and parse its output."""
    output, _ = process.communicate()
    if process.returncode != 0:
        raise LoadError(f"wrk exited with {process.returncode}:\n{output[-2000:]}")
    return parse_wrk(output)


async def paced(
    url: str, *, body: bytes, headers: Mapping[str, str], rate: float, seconds: float
) -> tuple[int, int]:
    """POST `body` at `rate` per second for `seconds` (open loop: a slow answer does not slow
    the sending), each with a fresh delivery id and `X-Sent-At` (epoch seconds). Returns
    (sent, answered 2xx)."""
    count = max(1, int(rate * seconds))
    prefix = f"paced-{os.getpid()}-{time.monotonic_ns()}"
    ok = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(number: int) -> None:
            nonlocal ok
            sent = {
                **headers,
                "X-GitHub-Delivery": f"{prefix}-{number}",
                "X-Sent-At": f"{time.time():.6f}",
            }
            try:
                answer = await client.post(url, content=body, headers=sent)
            except httpx.HTTPError:
                return
            ok += answer.is_success

        started = time.perf_counter()
        tasks = []
        for number in range(count):
            delay = started + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(number)))
        await asyncio.gather(*tasks)
    return count, ok
