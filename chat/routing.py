from django.urls import path

from chat import consumers

websocket_urlpatterns = [
    path("ws/chat/<str:slug>/", consumers.RoomConsumer.as_asgi()),
    path("ws/", consumers.UserConsumer.as_asgi()),
]
