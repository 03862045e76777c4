"""Sources: a raw request in, verified and parsed events out (DESIGN §2.2, §3.1), pure.

request.py     RawRequest: the request as plain data
verifiers.py   the Verifier interface and the simple ones (none, token, basic)
signatures.py  `hmac`: one configurable scheme for every sender that signs
presets.py     the known senders (github, stripe, shopify, ...) as hmac parameters, as data
twilio.py      the `twilio` verifier
registry.py    a source's `verify` mapping -> its Verifier
forwarded.py   the URL a sender called, through a reverse proxy
bodies.py      body parsers: JSON, form, multipart -> the payload
intake.py      a configured source compiled: verify, parse, schema, dedupe key, redact
signing.py     the other half: a request signed as its sender would (`ticketbridge send`)
"""
