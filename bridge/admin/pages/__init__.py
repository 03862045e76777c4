"""The admin's HTML pages, server-rendered, no script (DESIGN §4.1).

routes.py      the pages and their routes: login, overview, events, deliveries, providers
frame.py       what every page shares: the session guard, CSRF, redirects after a POST
actions.py     the buttons: replay, retry, pause, resume (CSRF-checked POSTs)
render.py      the Jinja environment, its filters, and the masked response
chart.py       the overview's chart geometry
"""
