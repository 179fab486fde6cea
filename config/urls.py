from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health, tokens

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/auth/token/", tokens.TokenObtainApi.as_view(), name="api-token"),
    path("api/auth/token/revoke/", tokens.TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("api/auth/token/revoke-all/", tokens.TokenRevokeAllApi.as_view(), name="api-token-revoke-all"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    # Scoring first: URLs are tried in order, and predictions are most of the traffic.
    path("api/", include(("scoring.api_urls", "scoring-api"))),
    path("api/", include(("registry.api_urls", "registry-api"))),
    path("api/", include(("monitoring.api_urls", "monitoring-api"))),
    path("", include("scoring.urls")),
    path("", include("monitoring.urls")),
    path("", include("registry.urls")),
]

# A database or broker outage raised outside a view (e.g. loading the session) is a 503 too.
handler500 = "config.errors.server_error"
handler404 = "config.errors.not_found"
