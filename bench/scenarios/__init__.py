"""The scenarios of DESIGN §7, by group: each module's `run(bench)` returns report rows.

ingest.py   ingest-1 (one receiver against A, D, D_full) and ingest-2 (two receivers,
            SQLite and PostgreSQL)
deployed.py deployed (`serve` with its worker against `serve --no-worker` under one load,
            then the burst's backlog drained, against `worker` alone)
e2e.py      e2e (stored events to a fake helpdesk against E; p99 at 200/s offered; the
            rate limiter holding its rate)
backlog.py  backlog (1,000 to 100,000 events waiting) and history (a batch into an empty
            store and into one holding 1,000,000 finished events): cost per event, on
            SQLite and PostgreSQL
lifecycle.py lifecycle (orders opened, noted and closed: keyed queues) against independent
            events
rules.py    match (10 against 10,000 rules, drained by `worker`) and load (`check`)
memory.py   memory (RSS after 1,000,000 events) and the soak
hostile.py  fuzz (the suite's fuzz campaign at 10,000 cases, answers counted by status) and
            slow (the ingest load beside 400 stalled clients)
faults.py   kill9, outage, diskfull, pgdown: the guarantees under real faults, counted
common.py   what they share: options, the run's directory, starting things, measuring
drain.py    `worker` draining a stored backlog: the measure of backlog, history, lifecycle,
            match and deployed's drain
databases.py the store seen from outside, SQLite or a fresh PostgreSQL schema: counts, a
            drain's span, history copied in
"""
