"""Rendering: ticket actions written by sandboxed Jinja templates (DESIGN §2.4, §2.5).

templates.py   the sandboxed environment: compiling templates, expressions and files
filters.py     the filters ticketbridge adds (e164, money, datetime, tojson, fromjson)
actions.py     a rule's ticket compiled and rendered into a TicketAction, and the
               context templates see of an event
"""
