from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat import media
from core.views import healthz
from projects import views as project_views

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("config.api_urls")),
    path("accounts/", include("accounts.urls")),
    # Uploads are served only here, behind the access check (chat/media.py).
    path(f"{settings.MEDIA_URL.strip('/')}/<str:folder>/<str:filename>", media.serve, name="media"),
    path("projects/", include("projects.urls")),
    # The website widget (SPEC §6.6): the script host pages embed, and the page in its iframe.
    path("widget.js", project_views.widget_script, name="widget-script"),
    path("widget/<str:project>/", project_views.widget_frame, name="widget-frame"),
    path("", include("chat.urls")),
]
