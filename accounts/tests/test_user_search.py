"""GET /api/users/?q= (SPEC §6.2): the start of a username, a display name, or the pinyin
of a Chinese display name, full or initials."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts import services
from accounts.models import SearchKey


@pytest.fixture
def api():
    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


def found(api, user, q) -> list[str]:
    response = api(user).get("/api/users/", {"q": q})
    assert response.status_code == 200, response.content
    return [u["username"] for u in response.json()]


@pytest.fixture
def people(make_user):
    zhang = make_user("zs1")
    services.profile_update(user=zhang, display_name="张三")
    make_user("zhangsan")
    li = make_user("lisi")
    services.profile_update(user=li, display_name="李四")
    make_user("zoe")
    return zhang


@pytest.mark.django_db
def test_pinyin_initials_and_full_find_the_chinese_name_and_the_username(api, mia, people):
    # zs1 is 张三: found by the initials and by the full pinyin, like the user named zhangsan.
    assert found(api, mia, "zs") == ["zs1"]
    assert found(api, mia, "zhangsan") == ["zhangsan", "zs1"]
    assert found(api, mia, "ZhangS") == ["zhangsan", "zs1"]
    assert found(api, mia, "张") == ["zs1"]
    assert found(api, mia, "ls") == ["lisi"]
    assert found(api, mia, "z") == ["zhangsan", "zoe", "zs1"]
    assert found(api, mia, "nobody") == []


@pytest.mark.django_db
def test_a_new_display_name_is_found_and_the_old_one_not(api, mia, people):
    services.profile_update(user=people, display_name="王五")
    assert found(api, mia, "ww") == ["zs1"]
    assert found(api, mia, "wangwu") == ["zs1"]
    assert found(api, mia, "zhangsan") == ["zhangsan"]


@pytest.mark.django_db
def test_inactive_users_are_not_found_and_bad_queries_are_refused(api, mia, people):
    people.is_active = False
    people.save()
    assert found(api, mia, "zhangs") == ["zhangsan"]
    for bad in ("", "   ", "x" * 81):
        response = api(mia).get("/api/users/", {"q": bad})
        assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert api(None).get("/api/users/", {"q": "zs"}).status_code in (401, 403)


@pytest.mark.django_db
def test_the_query_is_one_range_lookup_on_the_key_index(api, mia, people):
    with CaptureQueriesContext(connection) as queries:
        found(api, mia, "zs")
    sql = [q["sql"] for q in queries.captured_queries if "accounts_searchkey" in q["sql"]]
    assert len(sql) == 1
    assert "LIKE" not in sql[0].upper()  # a range on the index, not a pattern
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                f"EXPLAIN QUERY PLAN SELECT user_id FROM {SearchKey._meta.db_table} WHERE key >= %s AND key < %s",
                ["zs", "zt"],
            )
            plan = " ".join(str(row) for row in cursor.fetchall())
        assert "INDEX" in plan.upper(), plan


def test_website_widget_guests_are_not_found(api, people, make_user):
    make_user("guest-5f2a9c")
    make_user("guesthouse")
    assert found(api, people, "guest") == ["guesthouse"]
