"""HTML door for chat: the app shell, the room page, creating rooms and starting DMs.

Pages are rendered on the server; the live parts (messages, unread badges, presence) are
plain JavaScript modules under chat/static/chat/js/ talking to the REST API and sockets.
"""

from types import SimpleNamespace

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import selectors, services
from chat.models import Room
from chat.serializers import message_to_dict
from core.errors import AppError, AuthRequired, InvalidInput, NotAllowed, NotFound, RateLimited

SECTIONS = ("public", "private", "dm", "project")


def _shown_name(user) -> str:
    profile = getattr(user, "profile", None)
    return profile.shown_name if profile is not None else user.username


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
                "label": _shown_name(peer) if peer is not None else room.name,
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
    }


def home(request):
    q = request.GET.get("q", "").replace("\x00", "").strip()[:80]
    return render(request, "chat/home.html", {"sidebar": sidebar_context(user=request.user, q=q)})


def room(request, slug):
    try:
        room = selectors.room_get_for_user(user=request.user, slug=slug)
    except AuthRequired:
        return redirect_to_login(request.get_full_path())
    except NotFound:
        raise Http404("No such room.") from None
    history = selectors.message_history(room=room)
    membership = selectors.membership_get(user=request.user, room=room)
    peer = selectors.room_peers(user=request.user, rooms=[room]).get(room.id)
    blocked = selectors.blocked_ids(user=request.user)
    blocked_names = selectors.blocked_usernames(user=request.user)
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "label": _shown_name(peer) if peer is not None else room.name,
            "peer": peer,
            "membership": membership,
            "can_moderate": selectors.room_may_moderate(user=request.user, membership=membership),
            "history": [{**message_to_dict(m, room_slug=room.slug), "blocked": m.sender_id in blocked} for m in history],
            "blocked_users": sorted(blocked_names),
            "peer_blocked": peer is not None and peer.username in blocked_names,
            "moderation": selectors.moderation_state(user=request.user, room=room),
            "has_older": bool(history) and history[0].seq > 1,
            "recall_seconds": settings.PARLEY_RECALL_SECONDS,
            "edit_seconds": settings.PARLEY_EDIT_SECONDS,
            "max_body": settings.PARLEY_MAX_BODY,
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
    try:
        room = services.room_create(
            creator=request.user,
            slug=request.POST.get("slug", "").strip().lower(),
            name=request.POST.get("name", ""),
            kind=request.POST.get("kind", "public"),
        )
    except AppError as error:
        if isinstance(error, RateLimited):
            detail = _("You have created many rooms lately: try again in %(seconds)s s.") % {"seconds": error.retry_after}
        else:
            detail = error.detail
        messages.error(request, detail)
        back = request.POST.get("next") or ""
        # Only back to one of our own pages: `next` comes from the client (open redirect).
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            back = "home"
        return redirect(back)
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
            room, _ = services.dm_get_or_create(user=request.user, other_username=username)
            return redirect("room", slug=room.slug)
        other, room = selectors.dm_find(user=request.user, username=username)
    except (NotFound, InvalidInput) as error:
        return _notice(request, error.detail, status=404)
    except NotAllowed as error:
        return _notice(request, error.detail, status=403)
    if room is not None:
        return redirect("room", slug=room.slug)
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
