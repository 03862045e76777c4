"""Micro-benchmarks: the hot functions timed in-process with pytest-benchmark, beside the
macro bench (`python -m bench`), so that a regression shows in a function, not only in a ratio.

    conftest.py             the fixtures: the product loaded (bench/product.py write_config,
                            bridge.service.load_service), the signed request, a SQLite store
    workload.py             what they work on: the load's request, the loaded product, an event
                            loop to drive the store, a backlog of routed, keyed deliveries
    rounds.py               benchmark.pedantic, typed (setup untimed before each round)
    test_intake.py          verify (github-preset HMAC) and parse: raw request -> NewEvent
    test_routing.py         the event's template context, match (10 and 10,000 rules),
                            route_event (match and render, the worker's routing step)
    test_rendering.py       the matching rule's ticket action rendered
    test_classification.py  classify_response on a 2xx, a 429 with Retry-After, a 500
    test_store.py           ingest, claim_due and finish_attempt on a real SQLite file

Each benchmark asserts what it computed, so a broken function fails rather than gets fast;
none asserts a time. Run: `pytest bench/micro --benchmark-only` (README, "Micro-benchmarks").
Not collected by the suite: pyproject's testpaths is `tests`.
"""
