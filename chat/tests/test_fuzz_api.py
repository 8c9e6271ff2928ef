"""Schemathesis against the API's own OpenAPI schema (/api/schema/), in-process (WSGI).

Every operation gets PARLEY_FUZZ_EXAMPLES generated requests (default 15, derandomized,
so `make test` is repeatable and bounded), sent as a logged-in user (token) who owns a
public and a private room with a few messages. Checked: no 5xx, and every response
matches the schema (status code documented, body shape, content type). A longer run:
PARLEY_FUZZ_EXAMPLES=500 (docs/testing.md).
"""

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chat import services
from chat.models import Room

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "15"))

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """The WSGI app fires request_started/finished, which close "old" connections: on
    PostgreSQL that is the test's own, mid-transaction. Django's test client unhooks them
    the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(django_user_model, settings):
    settings.PARLEY_RATE_BURST = 10_000
    owner = django_user_model.objects.create_user(username="fuzzer", password="correct horse battery", is_staff=True)
    django_user_model.objects.create_user(username="other", password="correct horse battery")
    lobby = services.room_create(creator=owner, slug="lobby", name="Lobby")
    secret = services.room_create(creator=owner, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    for room in (lobby, secret):
        for n in range(3):
            services.message_send(sender=owner, room=room, body=f"message {n}")
    return Token.objects.create(user=owner).key


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
    )
