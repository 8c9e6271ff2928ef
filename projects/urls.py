from django.urls import path

from projects import views

urlpatterns = [
    path("<str:slug>/", views.project_detail, name="project"),
    path("<str:slug>/chat/", views.project_chat, name="project-chat"),
    path("<str:slug>/chats/", views.project_inbox, name="project-inbox"),
]
