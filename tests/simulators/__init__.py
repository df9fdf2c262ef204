"""Stand-ins for certificate authorities that cannot run in a test machine.

Each simulator follows the facts collected for its CA's API (not a guess of our own client),
so a connector tested against it meets the same answers the real service gives.
"""
