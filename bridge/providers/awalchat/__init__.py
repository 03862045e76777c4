"""The `awalchat` provider: Awal Chat's developer API (WhatsApp conversations with tickets).

adapter.py     AwalChatProvider: one attempt at an action; build() from the configuration
settings.py    what `check` refuses in the provider's settings and the rules using it
api.py         the developer-API calls, each one signed request, classified
signing.py     the HMAC-SHA256 request signature
dryrun.py      what `ticketbridge try` has Awal Chat answer instead of the network
"""
