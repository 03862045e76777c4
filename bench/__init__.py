"""The benchmark harness of DESIGN §7: `python -m bench`.

It builds and starts the yardsticks itself, runs the product (`ticketbridge serve`, `worker`,
`check`) in the same run, interleaved with them under the same load, and prints ratios:

    cli.py          the command: options, which scenarios, the table, bench/README.md
    scenarios/      one module per group: ingest (1 and 2 processes), deployed, e2e,
                    backlog (and history), lifecycle, rules (match, load), memory, hostile,
                    faults
    micro/          pytest-benchmark timings of the hot functions, in-process
                    (`pytest bench/micro --benchmark-only`)
    load.py         wrk: finding or installing it, the Lua script, parsing its JSON; a paced
                    asyncio sender for fixed-rate runs
    processes.py    a started server or worker: readiness, CPU time and RSS from /proc, stop
    payload.py      the 2,159-byte Stripe-like body and its GitHub-style signature
    product.py      the generated configuration and the ticketbridge processes
    yardsticks.py   A (bare 202), D / D_full (HMAC, JSON, group commit to SQLite), E (httpx
                    POSTs only); `python -m bench.yardsticks` serves or runs one
    helpdesk.py     the fake helpdesk: 201 with an id, counts calls, records latencies
    report.py       rows, medians and ratios, the table, the README section

Nothing here is imported by bridge/ and nothing here changes it: it only measures.
`bench/drivers.py` (the PostgreSQL driver comparison) is a separate script.
"""
