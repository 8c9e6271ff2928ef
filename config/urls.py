from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as accounts_views
from chat import media
from core.views import favicon, healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # SPEC §6.7: browsers and crawlers ask for /favicon.ico whatever the page says.
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("config.api_urls")),
    path("accounts/", include("accounts.urls")),
    path("setup/", accounts_views.setup, name="setup"),
    # Uploads are served only here, behind the access check (chat/media.py).
    path(f"{settings.MEDIA_URL.strip('/')}/<str:folder>/<str:filename>", media.serve, name="media"),
    path("projects/", include("projects.urls")),
    path("", include("chat.urls")),
]

handler404 = "chat.views.page_not_found"
handler403 = "chat.views.permission_denied"
handler500 = "chat.views.server_error"
