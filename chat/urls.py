from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("rooms/", views.room_create, name="room-create"),
    path("rooms/<str:slug>/", views.room, name="room"),
    path("rooms/<str:slug>/join/", views.room_join, name="room-join"),
    path("rooms/<str:slug>/integrations/", views.room_integrations, name="room-integrations"),
    path("rooms/<str:slug>/leave/", views.room_leave, name="room-leave"),
    path("rooms/<str:slug>/settings/", views.room_settings, name="room-edit"),
    path("rooms/<str:slug>/members/", views.room_invite, name="room-invite"),
    path("rooms/<str:slug>/members/<str:username>/remove/", views.room_remove, name="room-remove"),
    path("dm/", views.dm_start, name="dm-start"),
    path("people/", views.people, name="people"),
    path("dm/<str:username>/", views.dm, name="dm"),
    # Language switching (POST /i18n/setlang/) and the JavaScript translation catalog,
    # loaded as an ordinary script: the CSP allows no inline scripts.
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(domain="djangojs"), name="javascript-catalog"),
]
