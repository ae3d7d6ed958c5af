"""API fuzz over HTTP: gunicorn (2 workers, the project's config) serving the app, Genesys Cloud the sandbox.

A smaller run than the in-process one (tests/api/test_openapi_fuzz.py): the same requests and
checks, through a real socket, gunicorn's parsing and the worker processes.
"""

from __future__ import annotations

import pytest
import schemathesis

from billing_sync.sandbox.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET

from ..api.fuzzing import CONFIG, OPERATIONS, documented_operations, fuzz_operation, world  # noqa: F401 - fixture
from ..control_fixtures import MEDIA_HOST
from .conftest import Gunicorn, service_env

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 20


@pytest.fixture
def served(world, control_settings, sandbox, tmp_path):
    env = service_env(control_settings.database_url, GENESYS_ENVIRONMENT=sandbox.base_url,
                      GENESYS_CLIENT_ID=TEST_CLIENT_ID, GENESYS_CLIENT_SECRET=TEST_CLIENT_SECRET,
                      MEDIA_ALLOWED_HOSTS=MEDIA_HOST)
    server = Gunicorn(control_settings.database_url, tmp_path, env=env)
    yield server
    server.stop()


def test_over_http_every_answer_is_documented_and_none_is_a_server_error(served, world):
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json", config=CONFIG)
    assert documented_operations(schema) == set(OPERATIONS)
    succeeded = set()
    for method, path in OPERATIONS:
        answered = fuzz_operation(schema, method, path, world, examples=EXAMPLES_PER_OPERATION)
        if any(200 <= status < 300 for status in answered):
            succeeded.add((method, path))
    assert len(succeeded) >= len(OPERATIONS) // 2, f"few operations ever succeeded: {sorted(succeeded)}"
