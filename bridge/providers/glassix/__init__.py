"""The `glassix` provider: tickets through the Glassix REST API v1.2.

adapter.py     GlassixProvider: one attempt at an action; build() from the configuration
settings.py    the provider's settings, and what `check` refuses in the rules using it
body.py        a ticket action -> Glassix's JSON bodies (pure)
plan.py        the calls one action makes on a ticket, in order (pure)
token.py       access tokens: fetched, cached, renewed before they expire
dryrun.py      what `ticketbridge try` has Glassix answer instead of the network
"""
