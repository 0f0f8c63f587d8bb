"""``python -m load`` (``make load``): a bounded load-and-fault run of the extension from outside.

The sandbox platform over real HTTP (behind a fault proxy), a private ``redis-server`` as
``MAESTRANO_STORE``, :mod:`load.app` under gunicorn with 4 workers (sync and gthread) and a
real RQ worker for first-login imports; virtual users doing full browser logins while faults
are injected in turn. See :mod:`load.__main__` and docs/deployment.rst.
"""
