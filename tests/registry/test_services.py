import hashlib

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from registry import audit, registration, services
from registry.choices import FileKind, VersionStatus
from registry.models import AuditEvent, ModelVersion
from tests.conftest import stored_files


def test_it_registers_a_version_with_its_files_and_hashes(churn_model, author, register):
    version = register(churn_model, author)

    assert version.number == 1
    assert version.status == VersionStatus.DRAFT
    assert version.format == "skops"
    assert version.framework == "scikit-learn 1.9.1"
    assert {f.kind for f in version.files.all()} == {
        FileKind.ARTIFACT,
        FileKind.NOTEBOOK,
        FileKind.GOLDEN_SET,
        FileKind.REFERENCE_DATA,
    }
    for version_file in version.files.all():
        assert hashlib.sha256(version_file.file.read()).hexdigest() == version_file.sha256
    assert version.files.get(kind=FileKind.GOLDEN_SET).rows == 5
    assert version.metrics == {"auc": 0.91, "accuracy": 0.88}
    assert version.input_schema[2] == {
        "name": "contract",
        "type": "category",
        "required": True,
        "categories": ["monthly", "yearly"],
    }
    event = AuditEvent.objects.get(action="version.registered")
    assert event.actor == author
    assert event.version == version
    assert event.new is not None
    assert set(event.new["files"]) == {"model.skops", "analysis.ipynb", "golden.csv", "reference.parquet"}


def test_it_numbers_versions_per_model(churn_model, author, register):
    assert [register(churn_model, author).number for _ in range(3)] == [1, 2, 3]


def test_it_profiles_reference_data_after_commit(churn_model, author, register, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        version = register(churn_model, author)
    version.refresh_from_db()
    assert version.reference_profile["rows"] == 200
    assert version.reference_profile["columns"]["contract"]["kind"] == "categorical"


def test_it_leaves_nothing_behind_when_an_input_is_bad(churn_model, author, register, tmp_path):
    with pytest.raises(ValidationError) as error:
        register(churn_model, author, notebook=SimpleUploadedFile("n.ipynb", b"{not json"))

    assert "notebook" in error.value.message_dict
    assert ModelVersion.objects.count() == 0
    assert stored_files(tmp_path) == []
    assert not AuditEvent.objects.filter(action="version.registered").exists()
    assert register(churn_model, author).number == 1


def test_it_removes_stored_files_when_the_database_write_fails(churn_model, author, register, tmp_path, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(registration, "audit_event_create", fail)
    with pytest.raises(RuntimeError):
        register(churn_model, author)
    assert stored_files(tmp_path) == []
    assert ModelVersion.objects.count() == 0


def test_it_reports_every_problem_at_once(churn_model, author, register):
    with pytest.raises(ValidationError) as error:
        register(churn_model, author, metrics='{"auc": "high"}', params="[1, 2]", input_schema='[{"name": "x"}]')
    assert set(error.value.message_dict) >= {"metrics", "params", "input_schema"}


def test_it_refuses_users_without_the_register_permission(churn_model, manager, register):
    with pytest.raises(PermissionDenied):
        register(churn_model, manager)


def test_it_refuses_pickles_without_the_pickle_permission(churn_model, author, register, trained):
    import pickle

    artifact = SimpleUploadedFile("model.pkl", pickle.dumps(trained[0]))
    with pytest.raises(ValidationError) as error:
        register(churn_model, author, artifact=artifact)
    assert "may upload pickles" in error.value.message_dict["artifact"][0]


def test_it_accepts_pickles_from_permitted_users_and_requires_trust(churn_model, author, register, trained):
    import pickle

    from django.contrib.auth.models import Permission

    author.user_permissions.add(Permission.objects.get(codename="upload_pickle"))
    author = type(author).objects.get(pk=author.pk)
    version = register(churn_model, author, artifact=SimpleUploadedFile("model.pkl", pickle.dumps(trained[0])))
    assert version.format == "pickle"
    assert version.requires_trust and not version.is_trusted
    assert any("sklearn" in name for name in version.untrusted_types)


def test_it_infers_the_schema_from_reference_data_when_none_is_sent(churn_model, author, register):
    version = register(churn_model, author, input_schema="")
    assert [field["name"] for field in version.input_schema] == ["tenure", "charges", "contract"]


def test_it_accepts_untrusted_types_by_a_reviewer_only(churn_model, author, reviewer, manager, register):
    version = register(churn_model, author)
    version.untrusted_types = ["sklearn.tree._tree.Tree"]
    version.save()

    with pytest.raises(PermissionDenied):
        services.version_accept_untrusted_types(actor=manager, version=version)
    author.user_permissions.add(*reviewer.groups.get().permissions.all())
    author = type(author).objects.get(pk=author.pk)
    with pytest.raises(PermissionDenied, match="author"):
        services.version_accept_untrusted_types(actor=author, version=version)

    accepted = services.version_accept_untrusted_types(actor=reviewer, version=version, reason="tree models")
    assert accepted.is_trusted
    assert accepted.trust_accepted_by == reviewer
    assert AuditEvent.objects.get(action="version.trust_accepted").reason == "tree models"
    with pytest.raises(ValidationError):
        services.version_accept_untrusted_types(actor=reviewer, version=accepted)


def test_it_creates_and_updates_models_with_audit(author):
    model = services.model_create(actor=author, name="churn", title="Churn", task="classification", tags=["Telco"])
    assert [tag.name for tag in model.tags.all()] == ["telco"]
    with pytest.raises(ValidationError) as error:
        services.model_create(actor=author, name="churn", title="Again", task="classification")
    assert "already exists" in error.value.message_dict["name"][0]

    services.model_update(actor=author, model=model, title="Customer churn", tags=["telco", "risk"])
    event = AuditEvent.objects.get(action="model.updated")
    assert event.old == {"tags": ["telco"], "title": "Churn"}
    assert event.new == {"tags": ["risk", "telco"], "title": "Customer churn"}


def test_it_keeps_audit_events_append_only(author):
    event = audit.audit_event_create(actor=author, action="test.event")
    event.reason = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
