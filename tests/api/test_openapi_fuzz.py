"""API fuzz in-process (WSGI): every operation of /openapi.json against the real app, on SQLite and PostgreSQL.

The machinery (world, credentials, checks) is in fuzzing.py; gunicorn gets a smaller run in
tests/e2e/test_openapi_fuzz_http.py.
"""

from __future__ import annotations

import pytest
import schemathesis

from .fuzzing import CONFIG, OPERATIONS, documented_operations, fuzz_operation, world  # noqa: F401 - fixture

EXAMPLES_PER_OPERATION = 150
# The ingest endpoint is where a lost event is lost revenue: it gets more.
EXAMPLES = {("POST", "/webhooks/genesys"): 500}


@pytest.fixture
def api_schema(world):
    return schemathesis.openapi.from_wsgi("/openapi.json", world.app, config=CONFIG)


def test_the_fuzz_covers_every_documented_operation(api_schema):
    assert documented_operations(api_schema) == set(OPERATIONS), "a new operation: add it to OPERATIONS"


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_is_documented_and_none_is_a_server_error(method, path, api_schema, world):
    examples = EXAMPLES.get((method, path), EXAMPLES_PER_OPERATION)
    answered = fuzz_operation(api_schema, method, path, world, examples=examples)
    assert any(200 <= status < 300 for status in answered), "no request succeeded: the fuzz saw only refusals"
