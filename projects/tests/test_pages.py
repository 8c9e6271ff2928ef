"""The project pages in the browser's terms: list, publish, edit, and conversations that
name their project (issue 18)."""

import pytest
from django.test import Client

from chat import services as chat_services
from projects import services
from projects.models import Project

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_projects_to_anyone_and_offers_a_new_one_to_users(olivia, mia):
    services.project_create(owner=olivia, title="Bakery", slug="bakery", description="Fresh bread")
    page = Client().get("/projects/").content.decode()
    assert "Bakery" in page and 'href="/projects/bakery/"' in page and 'id="new-project"' not in page
    page = logged_in(mia).get("/projects/").content.decode()
    assert 'id="new-project"' in page and 'id="sidebar"' in page  # in the app's shell


def test_publishing_from_the_form_and_a_taken_slug_keeps_what_was_typed(olivia, mia):
    response = logged_in(olivia).post("/projects/new/", {"title": "Bakery", "slug": "", "description": "Bread"})
    assert response.status_code == 302 and response["Location"] == "/projects/bakery/"
    response = logged_in(mia).post("/projects/new/", {"title": "My bakery", "slug": "bakery", "description": "Cakes!"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "That slug is taken." in page and 'value="My bakery"' in page and "Cakes!" in page
    assert Project.objects.count() == 1


def test_a_chinese_title_gets_a_usable_slug(olivia):
    response = logged_in(olivia).post("/projects/new/", {"title": "面包店", "slug": ""})
    project = Project.objects.get()
    assert project.title == "面包店" and project.slug.startswith("p-")
    assert response["Location"] == f"/projects/{project.slug}/"


def test_only_the_owner_edits(olivia, mia):
    project = services.project_create(owner=olivia, title="Bakery", slug="bakery")
    assert logged_in(mia).post("/projects/bakery/edit/", {"title": "Mine"}).status_code == 403
    response = logged_in(olivia).post("/projects/bakery/edit/", {"title": "Bakery & Co", "description": "Since 1990"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.title, project.description, project.slug) == ("Bakery & Co", "Since 1990", "bakery")


def test_conversations_name_their_project_beside_a_dm_with_the_same_person(olivia, mia):
    bakery = services.project_create(owner=olivia, title="Bakery", slug="bakery")
    florist = services.project_create(owner=olivia, title="Florist", slug="florist")
    rooms = [services.project_chat_open(visitor=mia, project=p)[0].room for p in (bakery, florist)]
    chat_services.dm_get_or_create(user=mia, other_username="olivia")
    page = logged_in(olivia).get("/").content.decode()
    assert "Bakery · mia" in page and "Florist · mia" in page
    assert 'href="/projects/bakery/chats/"' in page  # the owner's way to the inbox
    room_page = logged_in(olivia).get(f"/rooms/{rooms[0].slug}/").content.decode()
    assert '<h1 id="room-name">Bakery · mia</h1>' in room_page and "<title>Bakery · mia · Parley</title>" in room_page
    inbox = logged_in(olivia).get("/projects/bakery/chats/")
    assert inbox.status_code == 200 and 'id="inbox"' in inbox.content.decode()
    assert logged_in(mia).get("/projects/bakery/chats/").status_code == 403
