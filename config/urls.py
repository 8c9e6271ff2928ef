from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat import media, pwa
from core.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("manifest.webmanifest", pwa.manifest, name="manifest"),
    path("sw.js", pwa.service_worker, name="service-worker"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("config.api_urls")),
    path("accounts/", include("accounts.urls")),
    # Uploads are served only here, behind the access check (chat/media.py).
    path(f"{settings.MEDIA_URL.strip('/')}/<str:folder>/<str:filename>", media.serve, name="media"),
    path("projects/", include("projects.urls")),
    path("", include("chat.urls")),
]
