"""HTML door for chat: the app shell, the room page, creating rooms and starting DMs.

Pages are rendered on the server; the live parts (messages, unread badges, presence) are
plain JavaScript modules under chat/static/chat/js/ talking to the REST API and sockets.
"""

import logging
from types import SimpleNamespace

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import selectors, services
from chat.models import Membership, Room
from chat.serializers import message_to_dict
from core.errors import AppError, AuthRequired, InvalidInput, NotAllowed, NotFound, RateLimited

SECTIONS = ("public", "private", "dm", "project")


def _shown_name(user) -> str:
    profile = getattr(user, "profile", None)
    return profile.shown_name if profile is not None else user.username


def room_label(room, peer) -> str:
    """What a room is called on screen: a DM by the other person; a project conversation
    by the project and the other person (an owner may talk to the same visitor about two
    projects and in a DM); any other room by its name."""
    if peer is None:
        return room.name
    if room.kind == "project":
        return f"{room.name} · {_shown_name(peer)}"
    return _shown_name(peer)


def sidebar_context(*, user, active=None, q: str = "") -> dict:
    """The sidebar: the user's own rooms grouped as they think of them, with unread
    counts, in full (they joined each one); and a bounded sample of the public rooms they
    have not joined (the most recently active, or those matching `q`), to search from.

    `active` is the room on screen: listed among the sample if it is one of those rooms.
    """
    memberships = list(selectors.memberships_with_unread(user=user)) if user.is_authenticated else []
    peers = selectors.room_peers(user=user, rooms=[m.room for m in memberships])
    active_slug = active.slug if active is not None else None
    sections: dict[str, list[dict]] = {kind: [] for kind in SECTIONS}
    for membership in sorted(memberships, key=lambda m: m.room.name.lower()):
        room, peer = membership.room, peers.get(membership.room_id)
        sections.setdefault(room.kind, []).append(
            {
                "room": room,
                "label": room_label(room, peer),
                "peer": peer,
                "unread": membership.unread_count,
                "mentions": membership.mention_count,
                "notify": membership.notify or selectors.notify_default(room.kind),
                "muted_until": membership.muted_until.isoformat() if membership.muted_until else "",
                "member": True,
                "active": room.slug == active_slug,
            }
        )
    discover = selectors.rooms_to_discover(user=user, q=q or None)
    joined = {m.room_id for m in memberships}
    if active is not None and active.is_public and active.id not in joined and active not in discover:
        discover.insert(0, active)
    return {
        "sections": sections,
        "discover": [
            {"room": room, "label": room.name, "unread": 0, "member": False, "active": room.slug == active_slug}
            for room in discover
        ],
        "discover_limit": selectors.DISCOVER_ROOMS,
        "q": q,
        "people": selectors.user_directory(user=user),
        "active_slug": active_slug,
        "my_projects": _my_projects(user),
    }


def _my_projects(user) -> list:
    """The projects `user` owns, for the links to their inboxes."""
    if not user.is_authenticated:
        return []
    from projects.selectors import project_list

    return list(project_list().filter(owner=user).select_related(None).only("slug", "title")[:20])


def home(request):
    q = request.GET.get("q", "").replace("\x00", "").strip()[:80]
    from accounts.services import setup_needed

    return render(
        request,
        "chat/home.html",
        {"sidebar": sidebar_context(user=request.user, q=q), "setup_needed": setup_needed()},
    )


def room(request, slug):
    """A room's page; a direct conversation's is shown at /dm/<the other person>/."""
    return room_page(request, slug, canonical=True)


def room_page(request, slug, *, canonical=False):
    try:
        room = selectors.room_get_for_user(user=request.user, slug=slug)
    except AuthRequired:
        return redirect_to_login(request.get_full_path())
    except NotFound:
        raise Http404("No such room.") from None
    history = selectors.message_history(room=room)
    membership = selectors.membership_get(user=request.user, room=room)
    peer = selectors.room_peers(user=request.user, rooms=[room]).get(room.id)
    if canonical and room.kind == "dm" and peer is not None and request.method == "GET":
        return redirect("dm", username=peer.username)
    can_moderate = selectors.room_may_moderate(user=request.user, membership=membership)
    everyone = selectors.room_members(room=room)
    member_count = everyone.count()
    members = list(everyone[:MEMBERS_SHOWN])
    if can_moderate:
        mutes = selectors.room_mutes(room=room)
        for member in members:
            member.mute_ends = mutes.get(member.user_id)
    bans = selectors.room_bans(room=room) if can_moderate and room.kind in (Room.Kind.PUBLIC, Room.Kind.PRIVATE) else None
    # Appointing admins: the owner and staff (chat.services.moderation.member_role_set).
    may_appoint = room.kind in (Room.Kind.PUBLIC, Room.Kind.PRIVATE) and (
        request.user.is_staff or (membership is not None and membership.role == Membership.Role.OWNER)
    )
    blocked = selectors.blocked_ids(user=request.user)
    blocked_names = selectors.blocked_usernames(user=request.user)
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "label": room_label(room, peer),
            "peer": peer,
            "membership": membership,
            "can_moderate": can_moderate,
            "may_appoint": may_appoint,
            "members": members,
            "bans": bans,
            "more_members": member_count - len(members),
            "retention_ages": [(key, RETENTION_LABELS[key]) for key in RETENTION_AGES],
            "retention_age": retention_choice(room),
            "history": [{**message_to_dict(m, room_slug=room.slug), "blocked": m.sender_id in blocked} for m in history],
            "blocked_users": sorted(blocked_names),
            "peer_blocked": peer is not None and peer.username in blocked_names,
            "moderation": selectors.moderation_state(user=request.user, room=room),
            "has_older": bool(history) and history[0].seq > 1,
            "recall_seconds": settings.PARLEY_RECALL_SECONDS,
            "edit_seconds": settings.PARLEY_EDIT_SECONDS,
            "max_body": settings.PARLEY_MAX_BODY,
            "max_upload": settings.PARLEY_UPLOAD_MAX_BYTES,
            "max_file": settings.PARLEY_FILE_MAX_BYTES,
            "sidebar": sidebar_context(user=request.user, active=room),
        },
    )


def room_integrations(request, slug):
    """Export links for whoever may read the room; its incoming webhooks for its owner
    and admins (chat/static/chat/js/integrations.js manages them over REST)."""
    try:
        room = selectors.room_get_for_user(user=request.user, slug=slug)
    except AuthRequired:
        return redirect_to_login(request.get_full_path())
    except NotFound:
        raise Http404("No such room.") from None
    membership = selectors.membership_get(user=request.user, room=room)
    may_manage = room.kind in (Room.Kind.PUBLIC, Room.Kind.PRIVATE) and selectors.room_may_moderate(
        user=request.user, membership=membership
    )
    return render(
        request,
        "chat/integrations.html",
        {"room": room, "may_manage": may_manage, "hook_base": request.build_absolute_uri("/hooks/")},
    )


@login_required
@require_POST
def room_create(request):
    """The sidebar's "new room" form."""
    name = request.POST.get("name", "")
    slug = request.POST.get("slug", "").strip().lower()
    kind = request.POST.get("kind", "public")
    try:
        room = services.room_create(
            creator=request.user,
            # Left empty (a name without a-z 0-9, e.g. Chinese): one is made from the name.
            slug=slug or services.room_slug_suggest(name),
            name=name,
            kind=kind,
        )
    except AppError as error:
        if isinstance(error, RateLimited):
            detail = _("You have created many rooms lately: try again in %(seconds)s s.") % {"seconds": error.retry_after}
        else:
            detail = _(error.detail)
        messages.error(request, detail)
        # The form stays open with what was typed.
        sidebar = sidebar_context(user=request.user)
        sidebar.update(open_create=True, create={"name": name, "slug": slug, "kind": kind})
        return render(request, "chat/home.html", {"sidebar": sidebar}, status=400)
    return redirect("room", slug=room.slug)


@login_required
@require_POST
def room_join(request, slug):
    """The "join" button of a public room someone is reading without being a member."""
    try:
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        services.room_join(user=request.user, room=room)
    except NotFound:
        raise Http404("No such room.") from None
    except RateLimited as error:
        messages.error(request, _("You have joined many rooms lately: try again in %(seconds)s s.") % {"seconds": error.retry_after})
    return redirect("room", slug=room.slug)


def _notice(request, detail: str, *, status: int):
    """A page that says what went wrong in the app's own frame (with the sidebar)."""
    return render(
        request, "chat/notice.html", {"detail": detail, "sidebar": sidebar_context(user=request.user)}, status=status
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def dm(request, username):
    """The direct conversation with `username`.

    GET redirects to its room, or before there is one shows a button that starts it;
    only that POST (CSRF-protected) creates the room, so a link or a cross-site <img>
    starts no conversation. An unknown user or yourself is a 404 page that says so.
    """
    try:
        if request.method == "POST":
            services.dm_get_or_create(user=request.user, other_username=username)
            return redirect("dm", username=username)
        other, room = selectors.dm_find(user=request.user, username=username)
    except (NotFound, InvalidInput) as error:
        return _notice(request, _(error.detail), status=404)
    except NotAllowed as error:
        return _notice(request, _(error.detail), status=403)
    if room is not None:
        return room_page(request, room.slug)  # the address names the person, not dm-1-2
    return render(request, "chat/dm_start.html", {"other": other, "sidebar": sidebar_context(user=request.user)})


@login_required
@require_GET
def dm_start(request):
    """The sidebar's "new message" picker without JavaScript: ?username= → /dm/<username>/."""
    username = request.GET.get("username", "").strip()
    if not username:
        return redirect("home")
    try:
        return redirect(reverse("dm", args=[username]))
    except NoReverseMatch:  # "a/b": no username has a slash, and no URL can hold one
        return _notice(request, "No such user.", status=404)


@require_GET
def search(request):
    """The search page (SPEC §6.3): the same search as GET /api/search/, results with the
    matches marked, each opening its room at that message; filters by room and person;
    "load more" is the next page by cursor. Works without JavaScript."""
    from chat.api_search import search_page

    q = (request.GET.get("q") or "").strip()
    context = {"search_q": q, "room_filter": request.GET.get("room", ""), "from_filter": request.GET.get("from", "")}
    if q:
        try:
            page = search_page(SimpleNamespace(query_params=request.GET, user=request.user, META=request.META))
        except AppError as error:
            context["error"] = error.detail
        else:
            context["results"] = [_search_result(row) for row in page["results"]]
            context["next_cursor"] = page["next_cursor"]
            more = request.GET.copy()
            more["cursor"] = page["next_cursor"] or ""
            context["more_query"] = more.urlencode()
    context["sidebar"] = sidebar_context(user=request.user)
    context["rooms"] = [
        room for room, membership, _ in selectors.room_list_for_user(user=request.user, limit=500) if membership
    ]
    return render(request, "chat/search.html", context)


def _search_result(row: dict) -> dict:
    """A result with its body cut into (text, marked) pieces by its highlights."""
    body, pieces, at = row["body"], [], 0
    for start, end in row["highlights"]:
        if start > at:
            pieces.append((body[at:start], False))
        pieces.append((body[start:end], True))
        at = end
    if at < len(body):
        pieces.append((body[at:], False))
    return {**row, "pieces": pieces, "when": parse_datetime(row["created_at"])}


# The room panel (members, invite, remove, leave, name, retention): plain forms that post
# here, each calling one service and coming back to the room with what happened.

MEMBERS_SHOWN = 200
RETENTION_AGES = {"": None, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "365d": 365 * 86400}
RETENTION_LABELS = {
    "": gettext_lazy("No age limit"), "1h": gettext_lazy("1 hour"), "24h": gettext_lazy("24 hours"),
    "7d": gettext_lazy("7 days"), "30d": gettext_lazy("30 days"), "365d": gettext_lazy("1 year"),
}


def _room_action(request, slug, action, *, done: str, back_to_room: bool = True):
    """Run `action(room)`; errors become a flash message. Back to the room (its panel open)."""
    try:
        room = selectors.room_get_for_user(user=request.user, slug=slug)
    except NotFound:
        raise Http404("No such room.") from None
    try:
        action(room)
    except AppError as error:
        messages.error(request, _(error.detail))
    else:
        messages.success(request, done)
        if not back_to_room:
            return redirect("home")
    return redirect(reverse("room", args=[slug]) + "#room-panel")


@login_required
@require_POST
def room_invite(request, slug):
    username = request.POST.get("username", "").strip()
    return _room_action(
        request, slug, lambda room: services.room_invite(by=request.user, room=room, username=username),
        done=_("%(name)s was added.") % {"name": selectors.shown_name(username)},
    )


@login_required
@require_POST
def room_remove(request, slug, username):
    name = selectors.shown_name(username)  # read before they go
    return _room_action(
        request, slug, lambda room: services.room_remove_member(by=request.user, room=room, username=username),
        done=_("%(name)s was removed.") % {"name": name},
    )


@login_required
@require_POST
def room_leave(request, slug):
    return _room_action(
        request, slug, lambda room: services.room_leave(user=request.user, room=room),
        done=_("You left the room."), back_to_room=False,
    )


@login_required
@require_POST
def room_settings(request, slug):
    """Name, topic and retention ("24 h", "the last 100 messages"), from the room panel."""
    import datetime

    age = request.POST.get("max_age", "")
    count = request.POST.get("max_count", "").strip()

    def change(room):
        if age not in RETENTION_AGES:
            raise InvalidInput(_("Choose how long messages are kept from the list."))
        if count and not count.isdigit():
            raise InvalidInput(_("The number of messages kept must be a whole number."))
        name, topic = request.POST.get("name"), request.POST.get("topic")
        changes = {}
        if name is not None and name.strip() != room.name:
            changes["name"] = name.strip()
        if topic is not None and topic.strip() != room.topic:
            changes["topic"] = topic.strip()
        if changes:
            services.room_update(by=request.user, room=room, **changes)
        seconds = RETENTION_AGES[age]
        services.room_set_retention(
            by=request.user, room=room,
            max_age=datetime.timedelta(seconds=seconds) if seconds else None,
            max_count=int(count) if count else None,
        )

    return _room_action(request, slug, change, done=_("Room settings saved."))


def retention_choice(room) -> str:
    """The RETENTION_AGES key of the room's max age ("" when none, or one set otherwise)."""
    if room.retention_max_age is None:
        return ""
    seconds = int(room.retention_max_age.total_seconds())
    return next((key for key, value in RETENTION_AGES.items() if value == seconds), "")


@login_required
@require_GET
def people(request):
    """The people directory: find someone by name or username, then message or block them."""
    q = request.GET.get("q", "").replace("\x00", "").strip()[:80]
    return render(
        request,
        "chat/people.html",
        {
            "people": selectors.people_search(user=request.user, q=q), "q": q,
            "blocked": selectors.blocked_usernames(user=request.user), "sidebar": sidebar_context(user=request.user),
        },
    )


# Error pages in the app's frame (config/urls.py handler404/handler403/handler500).


def _error_page(page, status: int):
    """An error page must not fail in turn (a missing static manifest, the database down):
    then a bare page with the status, as Django's own would be."""
    try:
        return page()
    except Exception:
        logging.getLogger(__name__).exception("the %s page failed; a bare one was sent", status)
        return HttpResponse(f"<!doctype html><title>{status}</title><h1>{status}</h1>", status=status)


def page_not_found(request, exception=None):
    detail = _("There is nothing here: the page or room does not exist, or you cannot see it.")
    return _error_page(lambda: _notice(request, detail, status=404), 404)


def permission_denied(request, exception=None):
    return _error_page(lambda: _notice(request, _("You are not allowed to see this page."), status=403), 403)


def server_error(request):
    """No database here: it may be what failed."""
    return _error_page(lambda: render(request, "500.html", status=500), 500)
