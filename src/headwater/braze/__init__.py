"""The Braze contract: one typed model of Braze's REST requests and responses.

The client validates with it before sending, the gateway validates what partners send, and
the sandbox validates and applies with it, so all three agree by construction.
"""
