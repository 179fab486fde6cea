"""Comments on versions, by reviewers and data scientists: each with an audit row, and everyone already in
the conversation told. The thread is read back by selectors.comment_tree."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from registry import notifications, permissions, selectors
from registry.audit import audit_event_create
from registry.choices import AuditAction
from registry.models import Comment, ModelVersion

MAX_COMMENT_LENGTH = 20_000


def comment_create(*, actor: Any, version: ModelVersion, body: str, parent: Comment | None = None) -> Comment:
    permissions.require_comment(actor)
    body = body.strip()
    if not body:
        raise ValidationError({"body": ["Write something."]})
    if len(body) > MAX_COMMENT_LENGTH:
        raise ValidationError({"body": [f"At most {MAX_COMMENT_LENGTH:,} characters."]})
    if parent is not None and parent.version_id != version.pk:
        raise ValidationError({"parent": ["That comment belongs to another version."]})
    with transaction.atomic():
        comment = Comment.objects.create(version=version, author=actor, body=body, parent=parent)
        audit_event_create(
            actor=actor,
            action=AuditAction.COMMENT_CREATED,
            version=version,
            new={"comment": comment.pk, "parent": parent.pk if parent else None, "body": body},
        )
        others = {version.author, *selectors.comment_authors(version=version)} - {actor}
        notifications.notify_users(
            users=list(others), message=f"{actor} commented on {version}.", url=version.get_absolute_url()
        )
    return comment
