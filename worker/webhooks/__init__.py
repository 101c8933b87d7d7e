"""The webhook receiver: verify each Vipps delivery, store it once, hand it on to the worker as a hint.

``vipps-billing webhooks serve`` runs it (``worker.webhooks.main`` is its composition root).
"""
