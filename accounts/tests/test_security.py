"""Attacks on logging in: open redirects, session fixation, user enumeration, brute force.

django-axes is off in the test settings (the test client's login() gives it no request);
the lockout tests here turn it on. Attempts live in the database, which every test
starts empty, so no lockout carries over from one test to the next.
"""

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from axes.utils import reset
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def axes_on(settings):
    settings.AXES_ENABLED = True
    reset()
    yield settings
    reset()


def _login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def _token(username, password, ip="127.0.0.1"):
    return APIClient(REMOTE_ADDR=ip).post("/api/auth/token/", {"username": username, "password": password}, format="json")


# Open redirect ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "http://evil.example@127.0.0.1.evil.example/",
               "https:evil.example", "/\\evil.example", "javascript:alert(1)"],
)
def test_login_never_redirects_off_site(olivia, target):
    response = Client().post(f"/accounts/login/?next={target}", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/", response["Location"]
    response = Client().post("/accounts/login/", {"username": "olivia", "password": PASSWORD, "next": target})
    assert response["Location"] == "/", response["Location"]


def test_login_follows_a_local_next(olivia):
    response = Client().post("/accounts/login/?next=/rooms/lobby/", {"username": "olivia", "password": PASSWORD})
    assert response["Location"] == "/rooms/lobby/"


def test_a_foreign_next_is_not_echoed_as_a_link(olivia):
    html = Client().get("/accounts/login/?next=%22%3E%3Cscript%3Ealert(1)%3C/script%3E").content.decode()
    assert "<script>alert(1)" not in html


# Session fixation -------------------------------------------------------------------------


def test_the_session_key_changes_at_login(olivia):
    client = Client()
    client.get("/accounts/login/")
    session = client.session
    session["planted"] = "by an attacker"
    session.save()
    planted = session.session_key
    client.cookies["sessionid"] = planted
    assert _login(client, "olivia", PASSWORD).status_code == 302
    assert client.cookies["sessionid"].value != planted
    # The planted key is not logged in: the attacker holding it gets nothing.
    attacker = Client()
    attacker.cookies["sessionid"] = planted
    assert attacker.get("/api/me/").status_code in (401, 403)


def test_the_session_key_changes_at_register():
    client = Client()
    client.get("/accounts/register/")
    session = client.session
    session.save()
    planted = session.session_key
    client.cookies["sessionid"] = planted
    response = client.post("/accounts/register/", {"username": "newbie", "password": "a quite long pass 1"})
    assert response.status_code == 302
    assert client.cookies["sessionid"].value != planted


# User enumeration --------------------------------------------------------------------------


def _error_text(response) -> str:
    html = response.content.decode()
    start = html.find('class="form-errors"')
    return html[start:html.find("</div>", start)] if start >= 0 else ""


def test_login_page_answers_the_same_for_unknown_user_and_wrong_password(olivia):
    unknown = _login(Client(), "nobody-here", "whatever123")
    wrong = _login(Client(), "olivia", "whatever123")
    assert unknown.status_code == wrong.status_code == 200
    assert _error_text(unknown) and _error_text(unknown) == _error_text(wrong)


def test_token_endpoint_answers_the_same_for_unknown_user_and_wrong_password(olivia):
    unknown = _token("nobody-here", "whatever123")
    wrong = _token("olivia", "whatever123")
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.json() == wrong.json() == {"detail": "Unable to log in with those credentials.", "code": "invalid"}


def test_inactive_user_answers_like_a_wrong_password(olivia):
    olivia.is_active = False
    olivia.save()
    assert _token("olivia", PASSWORD).json() == _token("nobody", PASSWORD).json()


# Brute force: django-axes -------------------------------------------------------------------


def test_html_login_locks_out_after_five_failures(olivia, axes_on):
    client = Client()
    for _ in range(4):
        assert _login(client, "olivia", "wrong").status_code == 200
    locked = _login(client, "olivia", "wrong")  # the fifth failure locks
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.content.decode()
    assert int(locked["Retry-After"]) == 900
    # Now even the right password is refused, and no session is made.
    right = _login(Client(), "olivia", PASSWORD)
    assert right.status_code == 429 and "sessionid" not in right.cookies
    # Another user from the same address is not locked (username + address).
    assert _login(Client(), "mia", "wrong").status_code == 200


def test_token_endpoint_locks_out_with_the_documented_json_error(olivia, axes_on):
    for _ in range(4):
        assert _token("olivia", "wrong").status_code == 400
    locked = _token("olivia", "wrong")
    assert locked.status_code == 429
    assert locked.json()["code"] == "rate_limited" and locked.json()["detail"]
    assert locked["Retry-After"] == "900"
    again = _token("olivia", PASSWORD)
    assert again.status_code == 429 and "token" not in again.json()
    # The lockout is per address: olivia from elsewhere still gets in.
    assert _token("olivia", PASSWORD, ip="10.1.2.3").status_code == 200
    # An unknown username is locked the same way: the lockout says nothing about existence.
    for _ in range(5):
        last = _token("ghost", "wrong")
    assert last.status_code == 429 and set(last.json()) == set(locked.json())


def test_html_and_api_share_one_failure_count(olivia, axes_on):
    for _ in range(3):
        _login(Client(), "olivia", "wrong")
    for _ in range(2):
        last = _token("olivia", "wrong")
    assert last.status_code == 429


def test_a_success_resets_the_count(olivia, axes_on):
    for _ in range(4):
        _token("olivia", "wrong")
    assert _token("olivia", PASSWORD).status_code == 200
    assert not AccessAttempt.objects.filter(username="olivia").exists()
    for _ in range(4):
        assert _token("olivia", "wrong").status_code == 400


def test_lockout_expires_after_the_cool_off(olivia, axes_on):
    for _ in range(5):
        _token("olivia", "wrong")
    assert _token("olivia", PASSWORD).status_code == 429
    axes_on.AXES_COOLOFF_TIME = 0.25  # hours
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert _token("olivia", PASSWORD).status_code == 200


def test_register_api_is_not_an_authentication_oracle(olivia, axes_on):
    """Registering a taken name says so (unavoidable), but never touches the lockout."""
    response = APIClient().post("/api/auth/register/", {"username": "olivia", "password": "another long pass"},
                                format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert not AccessAttempt.objects.exists()
