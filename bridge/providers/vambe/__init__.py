"""The `vambe` provider: tickets on a WhatsApp number through Vambe's public API.

adapter.py     VambeProvider: one attempt at an action; build() from the configuration
settings.py    the provider's settings, and what `check` refuses in the rules using it
body.py        a ticket action -> Vambe's JSON bodies (pure)
dryrun.py      what `ticketbridge try` has Vambe answer instead of the network
pipelines.py   an account's pipelines and stages (`ticketbridge vambe stages`)
"""
