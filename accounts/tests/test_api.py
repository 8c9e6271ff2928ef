"""Accounts through their doors: the REST API (register, token, me) and the HTML pages.

Personas: olivia and mia exist with the password "correct horse battery"; everyone
else is a stranger.
"""

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "correct horse battery"
STRONG = "plum tractor 19 lantern"


@pytest.fixture
def api():
    return APIClient()


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]


# Register -------------------------------------------------------------------------------


def test_register_creates_an_account_that_can_log_in(api):
    response = api.post("/api/auth/register/", {"username": "newbie", "password": STRONG}, format="json")

    assert response.status_code == 201
    assert response.json() == {"username": "newbie", "display_name": "newbie", "avatar": None}
    user = User.objects.get(username="newbie")
    assert user.check_password(STRONG)
    assert user.profile.display_name == ""


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "Olivia", "password": STRONG},  # taken, whatever the case
        {"username": "olivia", "password": STRONG},
        {"username": "newbie", "password": "123"},  # too short and numeric
        {"username": "newbie", "password": "password"},  # common
        {"username": "newbie", "password": "newbie123"},  # like the username
        {"username": "newbie"},
        {"password": STRONG},
        {},
        {"username": "", "password": STRONG},
        {"username": "   ", "password": STRONG},
        {"username": "x" * 31, "password": STRONG},
        {"username": "no spaces", "password": STRONG},
        {"username": ["list"], "password": STRONG},
    ],
)
def test_register_refuses_bad_input_and_creates_nothing(api, olivia, payload):
    before = list(User.objects.values_list("username", flat=True).order_by("id"))

    response = api.post("/api/auth/register/", payload, format="json")

    assert_error(response, 400, "invalid")
    assert list(User.objects.values_list("username", flat=True).order_by("id")) == before


def test_register_rejects_malformed_json(api):
    response = api.generic("POST", "/api/auth/register/", "{not json", content_type="application/json")

    assert_error(response, 400, "invalid")
    assert not User.objects.exists()


# Token exchange ---------------------------------------------------------------------------


def test_token_exchange_returns_a_token_that_authenticates(api, olivia):
    response = api.post("/api/auth/token/", {"username": "olivia", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=olivia).key == token

    again = api.post("/api/auth/token/", {"username": "olivia", "password": PASSWORD}, format="json")
    assert again.json() == {"token": token}  # the same key, not a new one per call

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/me/").json()["username"] == "olivia"


def test_wrong_password_and_unknown_user_get_the_same_answer(api, olivia):
    wrong_password = api.post("/api/auth/token/", {"username": "olivia", "password": "nope"}, format="json")
    unknown_user = api.post("/api/auth/token/", {"username": "nobody", "password": "nope"}, format="json")

    assert_error(wrong_password, 400, "invalid")
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.status_code == unknown_user.status_code
    assert not Token.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"username": "olivia"}, {"username": 1, "password": 2}])
def test_token_exchange_with_missing_fields_is_invalid(api, olivia, payload):
    assert_error(api.post("/api/auth/token/", payload, format="json"), 400, "invalid")
    assert not Token.objects.exists()


def test_inactive_user_gets_no_token(api, olivia):
    olivia.is_active = False
    olivia.save()

    response = api.post("/api/auth/token/", {"username": "olivia", "password": PASSWORD}, format="json")

    assert_error(response, 400, "invalid")


def test_delete_revokes_the_token_used(api, olivia, mia):
    token = Token.objects.create(user=olivia).key
    other = Token.objects.create(user=mia).key
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert api.delete("/api/auth/token/").status_code == 204

    assert not Token.objects.filter(key=token).exists() and Token.objects.filter(key=other).exists()
    assert_error(api.get("/api/me/"), 401, "auth_required")
    assert_error(api.delete("/api/auth/token/"), 401, "auth_required")


def test_delete_without_a_token_is_401(api, olivia):
    api.force_login(olivia)  # a session has no token to revoke

    assert_error(api.delete("/api/auth/token/"), 401, "auth_required")


def test_a_password_change_rotates_the_users_tokens(api, olivia, mia):
    old = Token.objects.create(user=olivia).key
    Token.objects.create(user=mia)

    olivia.set_password("a whole new horse battery")
    olivia.save()

    assert not Token.objects.filter(user=olivia).exists() and Token.objects.filter(user=mia).exists()
    api.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert_error(api.get("/api/me/"), 401, "auth_required")
    fresh = APIClient().post(
        "/api/auth/token/", {"username": "olivia", "password": "a whole new horse battery"}, format="json"
    )
    assert fresh.status_code == 200 and fresh.json()["token"] != old


def test_saving_a_user_without_a_new_password_keeps_the_tokens(olivia):
    token = Token.objects.create(user=olivia).key

    olivia.first_name = "Olivia"
    olivia.save()

    assert Token.objects.filter(key=token).exists()


def test_bad_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert_error(api.get("/api/me/"), 401, "auth_required")


# /api/me/ --------------------------------------------------------------------------------


def test_me_shows_own_profile(api, olivia):
    api.force_authenticate(olivia)

    assert api.get("/api/me/").json() == {"username": "olivia", "display_name": "olivia", "avatar": None}


def test_me_patch_changes_display_name(api, olivia):
    api.force_authenticate(olivia)

    response = api.patch("/api/me/", {"display_name": "  Olivia 🌿 O'Neil  "}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Olivia 🌿 O'Neil"
    olivia.profile.refresh_from_db()
    assert olivia.profile.display_name == "Olivia 🌿 O'Neil"
    assert api.get("/api/me/").json()["display_name"] == "Olivia 🌿 O'Neil"


def test_me_patch_refuses_an_overlong_display_name(api, olivia):
    api.force_authenticate(olivia)
    api.patch("/api/me/", {"display_name": "Liv"}, format="json")

    response = api.patch("/api/me/", {"display_name": "x" * 81}, format="json")

    assert_error(response, 400, "invalid")  # SPEC §2: only a message body over its limit is 413
    olivia.profile.refresh_from_db()
    assert olivia.profile.display_name == "Liv"


def test_me_patch_refuses_a_non_text_display_name(api, olivia):
    api.force_authenticate(olivia)

    assert_error(api.patch("/api/me/", {"display_name": ["a"]}, format="json"), 400, "invalid")


@pytest.mark.parametrize("method", ["get", "patch"])
def test_me_needs_a_login(api, method):
    response = getattr(api, method)("/api/me/", {"display_name": "x"} if method == "patch" else None, format="json")

    assert_error(response, 401, "auth_required")


# HTML pages ----------------------------------------------------------------------------


def logged_in_user(client: Client):
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def test_register_page_creates_account_and_logs_in():
    client = Client()
    assert client.get("/accounts/register/").status_code == 200

    response = client.post("/accounts/register/", {"username": "newbie", "password": STRONG})

    assert response.status_code == 302 and response["Location"] == "/"
    assert logged_in_user(client).username == "newbie"


def test_register_page_shows_the_error_for_a_taken_name(olivia):
    client = Client()

    response = client.post("/accounts/register/", {"username": "olivia", "password": STRONG})

    assert response.status_code == 400
    assert "That username is taken." in response.content.decode()
    assert logged_in_user(client) is None
    assert User.objects.count() == 1


def test_login_page_logs_in_and_rejects_a_wrong_password(olivia):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200

    bad = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
    assert bad.status_code == 200 and logged_in_user(client) is None

    good = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert good.status_code == 302 and good["Location"] == "/"
    assert logged_in_user(client) == olivia


def test_logout_is_post_only(olivia):
    client = Client()
    client.force_login(olivia)

    assert client.get("/accounts/logout/").status_code == 405
    assert logged_in_user(client) == olivia

    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert logged_in_user(client) is None


def test_html_login_form_needs_csrf(olivia):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})

    assert response.status_code == 403
    assert logged_in_user(client) is None


def test_profile_page_needs_a_login():
    response = Client().get("/accounts/profile/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/accounts/profile/")


def test_profile_page_changes_display_name(olivia):
    client = Client()
    client.force_login(olivia)
    assert client.get("/accounts/profile/").status_code == 200

    response = client.post("/accounts/profile/", {"display_name": "Liv"})

    assert response.status_code == 302
    olivia.profile.refresh_from_db()
    assert olivia.profile.display_name == "Liv"
    assert 'value="Liv"' in client.get("/accounts/profile/").content.decode()


def test_profile_page_refuses_an_overlong_display_name(olivia):
    client = Client()
    client.force_login(olivia)

    response = client.post("/accounts/profile/", {"display_name": "x" * 81})

    assert response.status_code == 400
    olivia.profile.refresh_from_db()
    assert olivia.profile.display_name == ""
