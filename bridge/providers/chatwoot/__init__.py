"""The `cloudchat` and `chatwoot` providers: a ticket is a Chatwoot conversation.

adapter.py     ChatwootProvider: one attempt at an action; build() from the configuration
settings.py    the provider's settings, and what `check` refuses in the rules using it
api.py         the Application API calls, one method each, answers parsed into records
plan.py        what an action writes to a conversation, and the calls that write it
dryrun.py      what `ticketbridge try` has Chatwoot answer instead of the network
"""
