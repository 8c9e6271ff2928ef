from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as accounts_views
from chat import api_integrations, media, pwa
from core.views import favicon, healthz
from projects import views as project_views

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # SPEC §6.7: browsers and crawlers ask for /favicon.ico whatever the page says.
    path("favicon.ico", favicon, name="favicon"),
    path("manifest.webmanifest", pwa.manifest, name="manifest"),
    path("sw.js", pwa.service_worker, name="service-worker"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("config.api_urls")),
    # Incoming webhooks (SPEC §6.5): outside /api/, they answer in Slack's plain text.
    re_path(r"^hooks/(?P<token>[A-Za-z0-9_-]{1,64})/?$", api_integrations.webhook_receive, name="webhook"),
    path("accounts/", include("accounts.urls")),
    path("setup/", accounts_views.setup, name="setup"),
    # Uploads are served only here, behind the access check (chat/media.py).
    path(f"{settings.MEDIA_URL.strip('/')}/<str:folder>/<str:filename>", media.serve, name="media"),
    path("projects/", include("projects.urls")),
    # The website widget (SPEC §6.6): the script host pages embed, and the page in its iframe.
    path("widget.js", project_views.widget_script, name="widget-script"),
    path("widget/<str:project>/", project_views.widget_frame, name="widget-frame"),
    path("", include("chat.urls")),
]

handler404 = "chat.views.page_not_found"
handler403 = "chat.views.permission_denied"
handler500 = "chat.views.server_error"
