"""HTML door for chat: the app shell and the room page."""

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render

from chat import selectors
from core.errors import AuthRequired, NotFound


def home(request):
    rooms = selectors.room_list_for_user(user=request.user)
    return render(request, "chat/home.html", {"rooms": rooms})


def room(request, slug):
    try:
        room = selectors.room_get_for_user(user=request.user, slug=slug)
    except AuthRequired:
        return redirect_to_login(request.get_full_path())
    except NotFound:
        raise Http404("No such room.") from None
    messages = selectors.message_history(room=room)
    return render(request, "chat/room.html", {"room": room, "messages": messages})
