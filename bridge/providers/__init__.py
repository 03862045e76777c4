"""Delivery to helpdesks: the Provider interface and its adapters (DESIGN §2.6).

base.py        Provider (one attempt, its outcome masked), Outcome, Job, Capabilities,
               and the classification of HTTP answers and transport errors
registry.py    build the configured providers; check what rules ask of them
dryrun.py      what the adapters' dry-run stubs share (`ticketbridge try`)
log.py         `log`: records the action (the quickstart's provider)
http.py        `http`: any HTTP API, with a templated url, headers and body
vambe/ glassix/ chatwoot/ awalchat/   one package per helpdesk, each the same shape:
               adapter.py (the Provider and build), settings.py, dryrun.py, and the
               helpdesk's own parts (api.py, body.py, plan.py, token.py, signing.py, ...)
"""
