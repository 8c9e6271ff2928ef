from django.urls import path

from projects import views

urlpatterns = [
    path("", views.project_list, name="projects"),
    path("new/", views.project_create, name="project-create"),
    path("<str:slug>/", views.project_detail, name="project"),
    path("<str:slug>/edit/", views.project_edit, name="project-edit"),
    path("<str:slug>/chat/", views.project_chat, name="project-chat"),
    path("<str:slug>/chats/", views.project_inbox, name="project-inbox"),
]
