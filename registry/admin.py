from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from registry.models import (
    AuditEvent,
    CheckRun,
    Comment,
    Consumer,
    ModelVersion,
    Notification,
    RegisteredModel,
    SignOff,
    Tag,
    VersionFile,
    WebhookDelivery,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Registered content is immutable: the admin shows it but never edits or deletes it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "title", "task", "owner", "updated_at"]
    list_filter = ["task", "tags"]
    search_fields = ["name", "title", "description"]
    # The approval quorum is part of four-eyes, and the high-risk tag sets it: both change through the
    # audited API, not here, where an edit would leave no audit row.
    readonly_fields = ["name", "task", "required_approvals", "tags", "created_at", "updated_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VersionFileInline(admin.TabularInline):
    model = VersionFile
    fields = readonly_fields = ("kind", "filename", "sha256", "size", "rows")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "format", "author", "created_at"]
    list_filter = ["status", "format"]
    search_fields = ["model__name"]
    inlines = [VersionFileInline]


@admin.register(VersionFile)
class VersionFileAdmin(ReadOnlyAdmin):
    list_display = ["version", "kind", "filename", "size", "sha256"]
    list_filter = ["kind"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "actor", "model", "version"]
    list_filter = ["action"]
    search_fields = ["action", "reason", "model__name"]
    date_hierarchy = "at"


# Sign-offs, checks and consumers change only through the workflow services, which enforce
# four-eyes and write the audit trail; the admin only shows them.
@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ["version", "kind", "user", "at", "review_round"]
    list_filter = ["kind"]


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ["version", "status", "started_at", "finished_at"]
    list_filter = ["status"]


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdmin):
    list_display = ["version", "author", "created_at"]


@admin.register(Consumer)
class ConsumerAdmin(ReadOnlyAdmin):
    list_display = ["name", "model", "owner", "contact_email", "webhook_url", "pinned_version", "active"]
    exclude = ["token_hash", "webhook_secret"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["consumer", "event", "status", "created_at", "delivered_at"]
    list_filter = ["status", "event"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["user", "message", "created_at", "read_at"]
