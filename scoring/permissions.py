"""Who may do what in batch scoring: every rule written once, as a named predicate.

Services enforce these (raising PermissionDenied with a reason), APIs and pages ask them before they
offer anything, and pages hand their answers to templates. Real-time scoring by a consumer token is
decided by the token itself (scoring/authentication.py).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from registry.permissions import may_register_versions, may_view_models
from scoring.models import SqlRun

MANAGE_BATCHES = "scoring.add_batchjob"


def may_manage_batches(user: Any) -> bool:
    """Create jobs, schedule them, run and resume them: data scientists, or holders of scoring.add_batchjob."""
    return bool(user.has_perm(MANAGE_BATCHES)) or may_register_versions(user)


def may_score_with_sql(user: Any) -> bool:
    """Register a model as a SQL function (registry/sql.py): scoring a whole table, as a batch job does."""
    return may_manage_batches(user)


def require_score_with_sql(user: Any) -> None:
    if not may_score_with_sql(user):
        raise PermissionDenied("Only data scientists (or holders of scoring.add_batchjob) may score with SQL.")


def require_sql_run_reporter(user: Any, run: SqlRun) -> None:
    if run.user_id != getattr(user, "pk", None):
        raise PermissionDenied("Only the user who registered the function reports its use.")


def may_view_batches(user: Any) -> bool:
    return may_view_models(user)


def require_batch_manager(actor: Any) -> None:
    if not may_manage_batches(actor):
        raise PermissionDenied("Only data scientists (or holders of scoring.add_batchjob) may manage batch scoring.")
