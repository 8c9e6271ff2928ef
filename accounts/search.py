"""Finding people by the start of their username, display name or the pinyin of a
Chinese display name (SPEC §6.2). The keys live in accounts.SearchKey; a query is one
indexed range scan: key >= q and key < q with its last character moved up by one."""

import re

from django.contrib.auth import get_user_model
from django.db import transaction
from pypinyin import Style, lazy_pinyin

from accounts.models import SearchKey
from accounts.selectors import GUEST_PREFIX

HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
KEY_MAX = 200
RESULTS = 20


def _squash(parts) -> str:
    return "".join(part.strip() for part in parts).replace(" ", "").lower()


def keys_for(username: str, display_name: str) -> set[str]:
    keys = {username.lower()}
    name = (display_name or "").strip().lower()
    if name:
        keys.add(name)
        if HAN.search(name):
            keys.add(_squash(lazy_pinyin(name)))
            keys.add(_squash(lazy_pinyin(name, style=Style.FIRST_LETTER)))
    return {key[:KEY_MAX] for key in keys if key}


def refresh_keys(user) -> None:
    profile = getattr(user, "profile", None)
    wanted = keys_for(user.username, profile.display_name if profile is not None else "")
    with transaction.atomic():
        have = set(SearchKey.objects.filter(user=user).values_list("key", flat=True))
        SearchKey.objects.filter(user=user, key__in=have - wanted).delete()
        SearchKey.objects.bulk_create([SearchKey(user=user, key=key) for key in wanted - have], ignore_conflicts=True)


def _upper_bound(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def users_matching(q: str, *, limit: int = RESULTS) -> list:
    """Up to `limit` active users any of whose keys starts with `q` (any case; spaces
    ignored): the first by matching key, shown by username. Two short queries: the key
    range walked in index order (stopping early however many users match), then those users."""
    prefix = q.strip().lower().replace(" ", "")
    if not prefix:
        return []
    rows = SearchKey.objects.filter(key__gte=prefix, key__lt=_upper_bound(prefix)).order_by("key", "user_id")
    ids: list[int] = []
    for user_id in rows.values_list("user_id", flat=True)[: limit * 4]:
        if user_id not in ids:
            ids.append(user_id)
    # Website-widget guests talk only to a project's owner: nobody finds them by name.
    users = (
        get_user_model().objects.filter(pk__in=ids, is_active=True)
        .exclude(username__startswith=GUEST_PREFIX).select_related("profile")
    )
    return sorted(users, key=lambda user: user.username)[:limit]
