"""The API fuzz: Schemathesis generates requests from /openapi.json and checks every answer against it.

Used in-process (tests/api/test_openapi_fuzz.py) and over HTTP against gunicorn
(tests/e2e/test_openapi_fuzz_http.py), with the playback-control and reconciliation
endpoints talking to a sandbox org over real HTTP. Requests are drawn from the documented
schema (valid) and from its negation (invalid); each goes with an admin's, a finance or a
viewer key (or the webhook's Basic credentials), or with none or wrong ones; now and then a
generated id is swapped for one that exists, a conversation for a live call, a body or query
for a valid one (webhook deliveries with their values drawn wide).

Checks, on every answer: no 5xx; the status is documented for the operation; the content
type, headers and body are as documented (errors: {code, status, message, errors}); input
that breaks the schema is refused with a 4xx. Derandomized, so a run is repeatable; bounded
by the number of examples per operation.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, negative_data_rejection, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

from billing_sync.genesys.payloads import EVENT_TYPE
from billing_sync.ledger.events import STATES
from billing_sync.playback.control import MAX_DURATION_S
from billing_sync.validation import MAX_INT32
from billing_sync.workers.dispatcher import DispatchOptions, Dispatcher

from ..conftest import WEBHOOK_PASSWORD, WEBHOOK_USER, EventFactory
from ..control_fixtures import LONG_MEDIA, SHORT_MEDIA

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
# How invalid data may be refused: Schemathesis' own list (4.x; 5xx is `not_a_server_error`'s
# to fail) plus 413, the answer the webhook owes a batch over 500 events (the schema's
# maxItems) or a body over 1 MiB (issue 2).
REJECTION_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = schemathesis.Config.from_dict({
    "generation": {"with-security-parameters": False},
    "checks": {"negative_data_rejection": {"expected-statuses": REJECTION_STATUSES}},
})
SECRET = "whsec_" + base64.b64encode(b"fuzz-signing-secret-of-32-bytes!").decode()
WINDOW = {"since": "2026-11-24T00:00:00Z", "until": "2026-11-25T00:00:00Z"}
ROW_IDS = st.integers(min_value=1, max_value=4)  # what the world holds: ids 1..3 of each kind, and one past them

OPERATIONS = [
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
    ("POST", "/webhooks/genesys"),
    ("GET", "/api/v1/playbacks"), ("GET", "/api/v1/playbacks/{playback_id}"),
    ("GET", "/api/v1/billing/records"), ("GET", "/api/v1/billing/outbox"),
    ("POST", "/api/v1/billing/outbox/{outbox_id}/replay"),
    ("POST", "/api/v1/conversations/{conversation_id}/playbacks"),
    ("POST", "/api/v1/conversations/{conversation_id}/playbacks/stop"),
    ("POST", "/api/v1/conversations/{conversation_id}/playbacks/switch"),
    ("GET", "/api/v1/switch-rules"), ("POST", "/api/v1/switch-rules"),
    ("GET", "/api/v1/switch-rules/{rule_id}"), ("DELETE", "/api/v1/switch-rules/{rule_id}"),
    ("GET", "/api/v1/stream"),
    ("GET", "/api/v1/audit/export.csv"), ("GET", "/api/v1/audit/verify"),
    ("POST", "/api/v1/reconciliations"), ("GET", "/api/v1/reconciliations/{run_id}"),
    ("GET", "/api/v1/reconciliations/{run_id}/discrepancies"),
    ("GET", "/api/v1/reports/completion"),
]


class World:
    """What fuzzed requests can find: a key per role, playbacks with charges whose delivery died,
    switch rules, reconciliation runs, and live calls that are playing."""

    def __init__(self, app, keys: dict[str, dict[str, str]], playback_ids: list[str], conversations: list[str]) -> None:
        self.app = app
        self.keys = keys
        self.playback_ids = playback_ids
        self.conversations = conversations


@pytest.fixture
def world(control_app, control_settings, calls, admin_key, sandbox):
    keys = {role: admin_key(role)[0] for role in ("admin", "finance", "viewer")}
    client = control_app.test_client()
    lifecycles = [EventFactory().lifecycle(conversation_id=f"conv-{n}") for n in range(3)]
    ingested = client.post("/webhooks/genesys", json=[e for events in lifecycles for e in events], headers=_basic())
    assert ingested.status_code == 200, ingested.json
    _let_outbox_die(control_app, control_settings, sandbox)
    conversations = [calls.place_call() for _ in range(3)]
    for n, conversation_id in enumerate(conversations):
        rule = {"dtmf": str(n), "media_url": SHORT_MEDIA}
        assert client.post("/api/v1/switch-rules", json=rule, headers=keys["admin"]).status_code == 201
        assert client.post("/api/v1/reconciliations", json=WINDOW, headers=keys["finance"]).status_code == 201
        # The longest play the API allows (72 s of real time here), so it outlasts the test and stop finds it.
        play = {"media_url": LONG_MEDIA, "max_duration_s": MAX_DURATION_S}
        started = client.post(f"/api/v1/conversations/{conversation_id}/playbacks", json=play, headers=keys["admin"])
        assert started.status_code == 201, started.json
    return World(control_app, keys, [events[0]["playbackId"] for events in lifecycles], conversations)


def _basic(password: str = WEBHOOK_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{WEBHOOK_USER}:{password}".encode()).decode()}


def _let_outbox_die(app, settings, sandbox) -> None:
    """One delivery attempt each to a sink that cannot verify them: every outbox row ends dead, replayable."""
    settings = settings.replace(billing_webhook_url=f"{sandbox.base_url}/sandbox/billing",
                                billing_webhook_secret=(SECRET,), billing_retry_schedule=(0.0,))
    options = DispatchOptions(concurrency=2, batch_size=10, lease_s=30, timeout_s=5)
    Dispatcher.from_settings(app.extensions["billing_sync"].db, settings, options=options).run(
        threading.Event(), once=True)


def fuzz_operation(schema, method: str, path: str, world: World, *, examples: int) -> Counter[int]:
    """Send `examples` generated requests (valid and invalid) to one operation, checking each answer; statuses seen."""
    operation = schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    answered: Counter[int] = Counter()

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(case=cases, data=st.data())
    def request_and_check(case, data):
        headers = _credentials(case, data, world)
        _aim_at_what_exists(case, data, world)
        answered[case.call_and_validate(headers=headers, checks=CHECKS).status_code] += 1

    request_and_check()
    print(f"{method} {path}: {sum(answered.values())} requests, by status {dict(sorted(answered.items()))}")
    return answered


def documented_operations(schema) -> set[tuple[str, str]]:
    return {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}


def _credentials(case, data, world) -> dict[str, str]:
    """Mostly valid credentials (an API key of any role), otherwise none or wrong ones."""
    if case.operation.path.startswith("/webhooks/"):
        choice = data.draw(st.sampled_from(["valid"] * 3 + ["none", "wrong password", "bearer"]), label="credentials")
        return {"valid": _basic(), "none": {}, "wrong password": _basic("not-the-password"),
                "bearer": {"Authorization": "Bearer not-basic"}}[choice]
    choice = data.draw(st.sampled_from(["admin"] * 3 + ["finance", "viewer", "none", "unknown", "basic"]),
                       label="credentials")
    return world.keys.get(choice) or {"none": {}, "unknown": {"Authorization": "Bearer bsk_not-a-key"},
                                      "basic": _basic()}[choice]


def _aim_at_what_exists(case, data, world) -> None:
    """Now and then an id that exists, a live call, a valid body or query, so requests get through."""
    for name, value in (case.path_parameters or {}).items():
        if not data.draw(st.booleans(), label=f"existing {name}"):
            continue
        if name == "conversation_id":
            case.path_parameters[name] = data.draw(st.sampled_from(world.conversations))
        elif name == "playback_id":
            case.path_parameters[name] = data.draw(st.sampled_from(world.playback_ids))
        elif isinstance(value, int):
            case.path_parameters[name] = data.draw(ROW_IDS)
    operation = (case.operation.method.upper(), case.operation.path)
    if operation in VALID_BODIES and data.draw(st.booleans(), label="valid body"):
        case.body = data.draw(VALID_BODIES[operation]())
    if operation in VALID_QUERIES and data.draw(st.booleans(), label="valid query"):
        case.query = data.draw(VALID_QUERIES[operation]())


def _deliveries():
    """One delivery in any accepted shape, its values drawn wide: any text, any INTEGER, any instant and offset."""
    instants = st.builds(lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
                         st.datetimes(), st.integers(-1439, 1439)).map(datetime.isoformat)
    events = st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=128), "conversationId": st.text(min_size=1, max_size=64),
         "playbackId": st.text(min_size=1, max_size=64), "state": st.sampled_from(STATES),
         "duration": st.integers(0, MAX_INT32), "sequence": st.integers(0, MAX_INT32), "timestamp": instants},
        optional={"mediaUrl": st.none() | st.text(max_size=2048), "eventType": st.just(EVENT_TYPE)})
    one = st.one_of(events, events.map(EventFactory.notification), events.map(EventFactory.eventbridge))
    return st.one_of(one, st.lists(one, min_size=1, max_size=5))


def _rules():
    """A switch rule the API accepts: exactly one trigger, playable media."""
    trigger = st.one_of(st.fixed_dictionaries({"dtmf": st.sampled_from("0123456789*#ABCD")}),
                        st.fixed_dictionaries({"keyword": st.sampled_from(["cancel", "agent please", "opt-out"])}))
    options = st.fixed_dictionaries({"media_url": st.sampled_from([SHORT_MEDIA, LONG_MEDIA])},
                                    optional={"cooldown_s": st.integers(0, 86_400), "loop": st.booleans()})
    return st.builds(lambda a, b: {**a, **b}, trigger, options)


def _plays():
    """A play request Genesys Cloud accepts."""
    return st.fixed_dictionaries({"media_url": st.sampled_from([SHORT_MEDIA, LONG_MEDIA])},
                                 optional={"loop": st.booleans(), "max_duration_s": st.integers(1, 3600)})


def _windows():
    """A window of an hour to a week, as an API takes it: around the world's events, anywhere, at the calendar's ends."""

    def window(start: datetime, hours: int) -> dict[str, str]:
        until = start + timedelta(hours=hours) if datetime.max - start > timedelta(hours=hours) else datetime.max
        return {"since": f"{start.isoformat()}Z", "until": f"{until.isoformat()}Z"}

    starts = st.one_of(st.datetimes(datetime(2026, 11, 20), datetime(2026, 11, 28)), st.datetimes(),
                       st.datetimes(max_value=datetime(1, 1, 10)), st.datetimes(min_value=datetime(9999, 12, 20)))
    return st.builds(window, starts, st.integers(1, 7 * 24))


PLAY = "/api/v1/conversations/{conversation_id}/playbacks"
VALID_BODIES = {("POST", "/webhooks/genesys"): _deliveries, ("POST", "/api/v1/switch-rules"): _rules,
                ("POST", PLAY): _plays, ("POST", f"{PLAY}/switch"): _plays,
                ("POST", "/api/v1/reconciliations"): _windows}
VALID_QUERIES = {("GET", "/api/v1/reports/completion"): _windows}
