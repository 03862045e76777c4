"""python -m bench: run the scenarios of DESIGN §7, print one table, record it.

    python -m bench [--only NAME ...] [--rounds 2] [--duration 10] [--quick] [--no-write]
                    [--soak-minutes 10] [--postgres-url URL] [--keep]

Scenarios: ingest-1, ingest-2, e2e, match, load, memory (all by default, in that order).
`--quick` is a smoke check: 1 s runs, 1 round, fewer events, a 15 s soak.
Exit 0 unless a measurement failed; a scenario that cannot run here is marked skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import payload, product
from bench.load import Load, LoadError, ensure_wrk
from bench.report import Row, replace_section, section, table
from bench.scenarios import (
    backlog,
    deployed,
    e2e,
    faults,
    hostile,
    ingest,
    lifecycle,
    memory,
    rules,
)
from bench.scenarios.common import Bench, MeasurementFailed, Options, Skipped

SCENARIOS: dict[str, Callable[[Bench], list[Row]]] = {
    "ingest-1": ingest.run_ingest_1,
    "ingest-2": ingest.run_ingest_2,
    "deployed": deployed.run_deployed,
    "e2e": e2e.run,
    "match": rules.run_match,
    "backlog": backlog.run_backlog,
    "lifecycle": lifecycle.run,
    "history": backlog.run_history,
    "load": rules.run_load,
    "memory": memory.run,
    "fuzz": hostile.run_fuzz,
    "slow": hostile.run_slow,
    "kill9": faults.run_kill9,
    "outage": faults.run_outage,
    "diskfull": faults.run_diskfull,
    "pgdown": faults.run_pgdown,
}
README = Path(__file__).with_name("README.md")
#: the project's README shows the same table in its "Benchmarks" section
READMES = (README, README.parent.parent / "README.md")
DEFAULT_PG = os.environ.get("BRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", nargs="*", help=f"as --only: {', '.join(SCENARIOS)}")
    parser.add_argument("--only", action="append", default=[], choices=list(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=None, help="default 2 (--quick: 1)")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default 2)")
    parser.add_argument("--soak-minutes", type=float, default=None, help="default 10")
    parser.add_argument("--quick", action="store_true", help="1 s runs, 1 round: smoke check")
    parser.add_argument(
        "--no-write", action="store_true", help="do not update bench/README.md and README.md"
    )
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenario if name not in SCENARIOS]
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)} (have: {', '.join(SCENARIOS)})")
    return args


def _options(args: argparse.Namespace) -> Options:
    quick = bool(args.quick)

    def pick(value: float | None, normal: float, fast: float) -> float:
        return value if value is not None else (fast if quick else normal)

    return Options(
        rounds=int(pick(args.rounds, 2, 1)),
        duration=pick(args.duration, 10.0, 1.0),
        warmup=pick(args.warmup, 2.0, 1.0),
        quick=quick,
        soak_minutes=pick(args.soak_minutes, 10.0, 0.25),
        postgres_url=args.postgres_url,
    )


def _bench(options: Options, root: Path) -> Bench:
    config = root / "signing"
    rules_dir, templates_dir = product.write_config(
        config, rules=1, provider=product.log_provider()
    )
    body = payload.body()
    body_file = root / "body.json"
    body_file.write_bytes(body)
    headers = payload.signed_headers(rules_dir, templates_dir, body)
    try:
        load: Load | None = Load(
            wrk=ensure_wrk(), body_file=body_file, headers=headers, workdir=root
        )
        no_load = ""
    except LoadError as exc:
        load, no_load = None, str(exc)
    return Bench(
        options=options,
        root=root,
        body=body,
        body_file=body_file,
        headers=headers,
        load=load,
        no_load=no_load,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    wanted = {*args.scenario, *args.only} or set(SCENARIOS)
    chosen = [name for name in SCENARIOS if name in wanted]
    options = _options(args)
    root = Path(tempfile.mkdtemp(prefix="ticketbridge-bench-"))
    rows: list[Row] = []
    failed = False
    started = time.monotonic()
    try:
        bench = _bench(options, root)
        for name in chosen:
            print(f"== {name}", file=sys.stderr, flush=True)
            try:
                rows.extend(SCENARIOS[name](bench))
            except Skipped as exc:
                rows.append(Row(scenario=name, what="-", note=f"skipped: {exc}"))
            except (MeasurementFailed, LoadError, OSError) as exc:
                failed = True
                traceback.print_exc(file=sys.stderr)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                rows.append(Row(scenario=name, what="-", note=f"FAILED: {first}"))
            print(f"   {name} done at {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        if args.keep:
            print(f"scratch kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    about = (
        f"{options.rounds} round(s) of {options.duration:g} s after {options.warmup:g} s "
        f"warm-up; {_machine_line()}"
    )
    print(table(rows))
    print(f"\n{about}")
    if not args.no_write:
        for readme in READMES:
            text = readme.read_text()
            block = section(
                rows,
                command=command.strip(),
                about=about,
                ran=chosen,
                previous=text,
                order=list(SCENARIOS),
            )
            readme.write_text(replace_section(text, block))
            print(f"written to {readme}", file=sys.stderr)
    return 1 if failed else 0


def _machine_line() -> str:
    from bench.report import machine

    return machine()
