"""Fixtures of the reliability tests, reused from the pusher's and the server's suites.

``pair`` (tests/push): a local database, a remote database, a live server on the remote
and a site key. ``server``/``db`` (tests/rest): a live server per backend, shared.
Scenarios that run the pusher choose their backends with
``@pytest.mark.parametrize("backend", …)``; the server's hostile-input tests run on all
three.
"""

from __future__ import annotations

from tests.push.conftest import pair  # noqa: F401
from tests.rest.conftest import _rest_servers, db, server  # noqa: F401
