"""Helpers of the locust scenarios in ``loadtest/locustfile.py``.

``slo`` (the SLO gate's verdict) imports nothing outside the standard library, so the tests check it
without locust; ``fixture`` (the tenant and accounts a run works on) needs ``requests`` and ``gevent``,
which come with locust.
"""
