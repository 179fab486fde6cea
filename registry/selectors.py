"""Reads from the registry, shaped for pages and the API, with the queries they need up front."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from registry import permissions, roles
from registry.checks.results import COMPILED
from registry.choices import VersionStatus
from registry.compilation_services import COMPILATION_OFF
from registry.diff import DiffRow, diff_mappings, diff_params, diff_schemas
from registry.models import (
    CheckRun,
    Comment,
    Compilation,
    Consumer,
    ModelVersion,
    Notification,
    RegisteredModel,
    SignOff,
    VersionFile,
    WebhookDelivery,
)
from registry.rendering import render_markdown


def model_list(
    *,
    search: str = "",
    owner: str = "",
    tag: str = "",
    status: str = "",
    task: str = "",
) -> QuerySet[RegisteredModel]:
    """Models with what a list shows: latest and production version numbers, version count."""
    versions = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-number")
    models = (
        RegisteredModel.objects.select_related("owner")
        .prefetch_related("tags")
        .annotate(
            version_count=Count("versions", distinct=True),
            latest_number=Subquery(versions.values("number")[:1]),
            production_number=Subquery(versions.filter(status=VersionStatus.PRODUCTION).values("number")[:1]),
        )
        .order_by("name")
    )
    if search:
        models = models.filter(
            Q(name__icontains=search) | Q(title__icontains=search) | Q(description__icontains=search)
        )
    if owner:
        models = models.filter(owner__username=owner)
    if tag:
        models = models.filter(tags__name=tag)
    if task:
        models = models.filter(task=task)
    if status:
        models = models.filter(versions__status=status)
    return models.distinct()


def model_get(*, name: str) -> RegisteredModel:
    return get_object_or_404(RegisteredModel.objects.select_related("owner").prefetch_related("tags"), name=name)


def version_list(*, model: RegisteredModel, status: str = "", author: str = "") -> QuerySet[ModelVersion]:
    versions = model.versions.select_related("author", "parent", "model").order_by("-number")
    if status:
        versions = versions.filter(status=status)
    if author:
        versions = versions.filter(author__username=author)
    return versions


def version_get(*, model_name: str, number: int) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related(
            "model", "model__owner", "author", "parent", "trust_accepted_by"
        ).prefetch_related(Prefetch("files", queryset=VersionFile.objects.order_by("kind", "filename"))),
        model__name=model_name,
        number=number,
    )


def version_file_get(*, version: ModelVersion, file_id: int) -> VersionFile:
    return get_object_or_404(version.files.all(), pk=file_id)


def production_version(*, model: RegisteredModel) -> ModelVersion | None:
    return model.versions.filter(status=VersionStatus.PRODUCTION).first()


def deprecated_versions(*, model: RegisteredModel) -> QuerySet[ModelVersion]:
    return model.versions.filter(status=VersionStatus.DEPRECATED)


@dataclass(frozen=True)
class VersionComparison:
    version: ModelVersion
    base: ModelVersion | None
    base_label: str
    params: list[DiffRow]
    metrics: list[DiffRow]
    input_schema: list[DiffRow]
    output_schema: list[DiffRow]

    @property
    def estimator_changed(self) -> bool:
        """Whether a different class predicts: its parameters then compare only by name, not by meaning."""
        old, new = (self.base.estimator if self.base else ""), self.version.estimator
        return bool(old and new and old != new)


def version_comparison(*, version: ModelVersion) -> VersionComparison:
    """Compare with the version in production, or else with the version before this one."""
    base = production_version(model=version.model)
    label = "production"
    if base is None or base.pk == version.pk:
        base = version.model.versions.filter(number__lt=version.number).order_by("-number").first()
        label = "previous version"
    # With nothing to compare against, every row reads as "added" and the page shows one column.
    return VersionComparison(
        version=version,
        base=base,
        base_label=label if base else "",
        params=diff_params(base.params if base else {}, version.params),
        metrics=diff_mappings(base.metrics if base else {}, version.metrics),
        input_schema=diff_schemas(base.input_schema if base else [], version.input_schema),
        output_schema=diff_schemas(base.output_schema if base else [], version.output_schema),
    )


# --- the review ----------------------------------------------------------------------------------


def round_approvals(*, version: ModelVersion) -> QuerySet[SignOff]:
    """The approvals of the version's current review round."""
    return version.signoffs.filter(kind=SignOff.Kind.APPROVAL, review_round=version.review_round)


def reviewer_list(*, version: ModelVersion) -> list[Any]:
    """Whom to ask to review `version`: active users whose role may review, and superusers; never its author."""
    codename = permissions.REVIEW.partition(".")[2]
    reviewers = (
        get_user_model()
        .objects.filter(Q(groups__permissions__codename=codename) | Q(is_superuser=True), is_active=True)
        .exclude(pk=version.author_id)
    )
    return list(reviewers.distinct())


def admin_list() -> list[Any]:
    """Who runs the installation and is told of its faults: active users in the Admins role, and superusers."""
    admins = get_user_model().objects.filter(Q(groups__name=roles.ADMIN) | Q(is_superuser=True), is_active=True)
    return list(admins.distinct().order_by("pk"))


@dataclass(frozen=True)
class ReviewInbox:
    waiting: QuerySet[ModelVersion]  # for this user's sign-off: approvals to give, go-lives to sign
    mine: QuerySet[ModelVersion]  # this user's own versions, back with them


def review_inbox(*, user: Any) -> ReviewInbox:
    waiting = ModelVersion.objects.none()
    if permissions.may_review(user):
        already = SignOff.objects.filter(
            kind=SignOff.Kind.APPROVAL, user=user, version=OuterRef("pk"), review_round=OuterRef("review_round")
        )
        waiting = waiting | ModelVersion.objects.filter(status=VersionStatus.IN_REVIEW).exclude(
            Q(author=user) | Q(Exists(already))
        )
    if permissions.may_go_live(user):
        waiting = waiting | ModelVersion.objects.filter(status=VersionStatus.CHECKS_PASSED).exclude(author=user)
    mine = ModelVersion.objects.filter(author=user, status__in=VersionStatus.WITH_AUTHOR)
    return ReviewInbox(
        waiting=waiting.select_related("model", "author").order_by("status_changed_at"),
        mine=mine.select_related("model").order_by("status_changed_at"),
    )


@dataclass
class CommentNode:
    comment: Comment
    html: str
    replies: list[CommentNode]


def comment_tree(*, version: ModelVersion) -> list[CommentNode]:
    """The version's comments as threads, oldest first, each with its Markdown rendered."""
    nodes: dict[int, CommentNode] = {}
    roots: list[CommentNode] = []
    for comment in comment_list(version=version).order_by("created_at", "id"):
        node = CommentNode(comment=comment, html=render_markdown(comment.body), replies=[])
        nodes[comment.pk] = node
        parent = nodes.get(comment.parent_id) if comment.parent_id else None
        (parent.replies if parent else roots).append(node)
    return roots


def comment_list(*, version: ModelVersion) -> QuerySet[Comment]:
    return version.comments.select_related("author")


def comment_get(*, version: ModelVersion, comment_id: int) -> Comment | None:
    """A comment on `version` (one to reply to), or None."""
    return version.comments.filter(pk=comment_id).first()


def comment_authors(*, version: ModelVersion) -> list[Any]:
    return [comment.author for comment in comment_list(version=version)]


@dataclass
class Review:
    approvals: list[SignOff]
    approvals_needed: int
    signoffs: list[SignOff]
    check_run: CheckRun | None
    comments: list[CommentNode]
    deprecated: list[ModelVersion]
    production: ModelVersion | None
    may_still_approve: list[Any]  # in review: who else may give an approval this round
    consumers: list[Consumer]  # the active consumers, whom a change of production is told


def approvers_left(*, version: ModelVersion) -> list[Any]:
    """Who may still approve `version` in its current review round: reviewers other than its author who
    have not approved yet (empty unless it is in review)."""
    if version.status != VersionStatus.IN_REVIEW:
        return []
    approved = set(round_approvals(version=version).values_list("user_id", flat=True))
    return [user for user in reviewer_list(version=version) if user.pk not in approved]


def version_review(*, version: ModelVersion) -> Review:
    """Everything the review panel of a version page shows, in a fixed number of queries. What the user may
    do there is the workflow's to say (workflow.available_actions)."""
    signoffs = list(signoff_list(version=version))
    return Review(
        approvals=[s for s in signoffs if s.kind == SignOff.Kind.APPROVAL and s.review_round == version.review_round],
        approvals_needed=version.model.approvals_needed,
        signoffs=signoffs,
        check_run=check_run_list(version=version).first(),
        comments=comment_tree(version=version),
        deprecated=list(deprecated_versions(model=version.model)),
        production=production_version(model=version.model),
        may_still_approve=approvers_left(version=version),
        consumers=list(consumer_list(model=version.model).filter(active=True)),
    )


def check_run_list(*, version: ModelVersion) -> QuerySet[CheckRun]:
    return version.check_runs.select_related("requested_by")


def signoff_list(*, version: ModelVersion) -> QuerySet[SignOff]:
    return version.signoffs.select_related("user")


ONNX_ENGINE = "onnx"


@dataclass(frozen=True)
class ServingEngine:
    """Which engine serves a version and why: the compiled graph only once a check run verified it."""

    engine: str  # "onnx", or the artifact's format for the native model
    reason: str
    compilation: Compilation | None
    check_run: CheckRun | None  # the run whose "Compiled model agrees" result decided
    result: dict[str, Any] | None  # that result

    @property
    def compiled(self) -> bool:
        return self.engine == ONNX_ENGINE and self.compilation is not None

    def as_json(self) -> dict[str, Any]:
        return {"engine": self.engine, "reason": self.reason}


def serving_engine(*, version: ModelVersion) -> ServingEngine:
    """Reads the version's compilation and check runs through its relations, so that a list of versions
    fetched with `select_related("compilation")` and `prefetch_related("check_runs")` asks nothing more."""
    try:
        compilation: Compilation | None = version.compilation
    except Compilation.DoesNotExist:
        compilation = None
    native = version.format

    def serves_native(reason: str, check_run: CheckRun | None = None, result: Any = None) -> ServingEngine:
        return ServingEngine(native, reason, compilation, check_run, result)

    if compilation is None:
        return serves_native("Not compiled: the version was registered before compilation existed.")
    if not settings.MF_COMPILE_MODELS:
        return serves_native(COMPILATION_OFF)
    if compilation.status != Compilation.Status.COMPILED:
        reasons: dict[str, str] = {
            Compilation.Status.PENDING: (
                "Compiling in a worker: reload the page in a moment."
                if version.is_trusted
                else "Compiled once a reviewer has accepted the artifact's types (nothing loads it before)."
            ),
            Compilation.Status.UNSUPPORTED: f"Cannot be compiled: {compilation.error}",
            Compilation.Status.FAILED: f"Compilation failed: {compilation.error}",
            Compilation.Status.DISABLED: compilation.error or "Compilation was switched off at registration.",
        }
        return serves_native(reasons.get(compilation.status, compilation.get_status_display()))
    # The latest finished run decides: a later run that finds a mismatch withdraws an earlier pass.
    finished = [
        run
        for run in version.check_runs.all()
        if run.status in (CheckRun.Status.PASSED, CheckRun.Status.FAILED) and run.finished_at is not None
    ]
    for check_run in sorted(finished, key=lambda run: (run.finished_at, run.pk), reverse=True):
        result = next((r for r in check_run.results if r.get("name") == COMPILED), None)
        if result is None:
            continue
        evidence = result.get("evidence") or {}
        if result.get("status") != "passed":
            return serves_native(
                f"The compiled model did not pass check run #{check_run.pk}: {result.get('summary', '')}",
                check_run,
                result,
            )
        if evidence.get("sha256") != compilation.sha256:
            return serves_native(
                f"Check run #{check_run.pk} verified another file than the current compiled one.", check_run, result
            )
        rows = sum((evidence.get("rows") or {}).values())
        return ServingEngine(
            ONNX_ENGINE, f"Verified by check run #{check_run.pk} on {rows:,} rows.", compilation, check_run, result
        )
    return serves_native(
        "Compiled; not verified yet: the pre-deployment checks compare it with the native model after approval."
    )


def compilation_file_get(*, version: ModelVersion) -> Compilation:
    """The version's compiled (or attached) ONNX graph, or 404 while there is none."""
    return get_object_or_404(Compilation.objects.exclude(file=""), version=version)


# --- consumers, their webhook deliveries, and in-app notifications ------------------------------


def consumer_list(*, model: RegisteredModel) -> QuerySet[Consumer]:
    return model.consumers.select_related("model", "owner", "pinned_version").order_by("name")


def consumer_get(*, model: RegisteredModel, name: str) -> Consumer:
    return get_object_or_404(consumer_list(model=model), name=name)


def delivery_list(*, consumer: Consumer) -> QuerySet[WebhookDelivery]:
    return consumer.deliveries.order_by("-created_at", "-id")


def notification_list(*, user: Any, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's notifications, unread first, newest first within each group."""
    notifications = Notification.objects.filter(user_id=user.pk).alias(
        unread=ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField())
    )
    if unread_only:
        notifications = notifications.filter(read_at__isnull=True)
    return notifications.order_by("-unread", "-created_at", "-id")


def unread_notifications(user: Any) -> QuerySet[Notification]:
    return notification_list(user=user, unread_only=True)
