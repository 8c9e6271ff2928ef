"""First run (SPEC §6.7): while no staff account exists, /setup/ makes the first one, and
only with the setup code the server prints; an ordinary registration never becomes staff."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from accounts import services
from chat.models import Membership, Room

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "correct horse battery 9"


def form(code, username="root", room="General"):
    return {"code": code, "username": username, "password": PASSWORD, "room": room}


def test_setup_with_the_printed_code_makes_the_staff_account_and_leads_to_its_first_room(capsys):
    call_command("setup_code", url="http://chat.example:9000")
    printed = capsys.readouterr().out
    assert "http://chat.example:9000/setup/" in printed
    code = services.setup_code()
    assert code in printed

    client = Client()
    assert client.get("/setup/").status_code == 200
    response = client.post("/setup/", form(code.lower().replace("-", " ")))  # as typed from a terminal
    room = Room.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/rooms/{room.slug}/"
    assert (room.name, room.slug, room.kind) == ("General", "general", "public")
    root = User.objects.get(username="root")
    assert root.is_staff and root.is_superuser
    assert Membership.objects.get(room=room).user == root
    assert client.get(f"/rooms/{room.slug}/").context["user"] == root  # logged in

    # Done once: the page is gone, the code opens nothing, and the command prints nothing.
    assert client.get("/setup/").status_code == 404
    assert Client().post("/setup/", form(code, username="second")).status_code == 404
    assert not User.objects.filter(username="second").exists()
    call_command("setup_code")
    assert capsys.readouterr().out == ""


def test_a_wrong_code_creates_nothing():
    client = Client()
    response = client.post("/setup/", form("0000-0000-0000-0000"))
    assert response.status_code == 400
    assert "not the setup code" in response.content.decode()
    assert not User.objects.exists() and not Room.objects.exists()


def test_registering_first_never_makes_staff_and_the_home_page_points_to_setup():
    client = Client()
    assert client.post("/accounts/register/", {"username": "first", "password": PASSWORD}).status_code == 302
    assert not User.objects.get(username="first").is_staff
    assert 'id="setup-hint"' in client.get("/").content.decode()
    User.objects.create_user("boss", password=PASSWORD, is_staff=True)
    assert 'id="setup-hint"' not in client.get("/").content.decode()


def test_a_chinese_only_room_name_gets_a_usable_slug():
    response = Client().post("/setup/", form(services.setup_code(), room="茶室"))
    room = Room.objects.get()
    assert room.name == "茶室" and room.slug.startswith("room-")
    assert response["Location"] == f"/rooms/{room.slug}/"
