"""ticketbridge: webhooks in, helpdesk tickets out."""

__version__ = "0.1.0"
