"""The building blocks of ``rayflow.retry_policy``: conditions, waits and stops, one module each.

Import them from ``rayflow.retry_policy``; the modules here are private and may move.
"""
