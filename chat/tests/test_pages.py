"""HTML pages of the app outside the room view (issue 18): the favicon, error pages in
the app's frame, the people directory, joining by sending."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_favicon_ico_is_served():
    response = Client().get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[0][0].endswith("favicon.svg")
