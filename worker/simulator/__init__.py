"""A local Vipps MobilePay Recurring API v3 simulator (ASGI app + CLI).

It speaks only HTTP, like the real Vipps, and imports nothing else from ``worker``.
"""
