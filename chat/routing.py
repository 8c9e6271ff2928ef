from django.urls import path

from chat.consumers_room import RoomConsumer
from chat.consumers_user import UserConsumer
from chat.consumers_widget import WidgetConsumer

websocket_urlpatterns = [
    path("ws/chat/<str:slug>/", RoomConsumer.as_asgi()),
    path("ws/widget/<str:slug>/", WidgetConsumer.as_asgi()),
    path("ws/", UserConsumer.as_asgi()),
]
