"""Delivery: from a stored event to the provider calls, with retries, order and pacing.

stored event --dispatch--> deliveries --claim (lease)--> attempt --> decide --> store

dispatch.py    the routing step, pure: match the event's rules, render each action
worker.py      the loop: route, claim due deliveries, deliver, finish; the only retry loop
attempts.py    one attempt without I/O: the adapter's job, and what its outcome means
retry.py       when to try again: exponential backoff with full jitter, Retry-After
limits.py      per-provider pacing in a worker: circuit breaker, concurrency cap
steering.py    what operators do to stored work: route again, retry dead, pause, resume
"""
