"""The demo moved from registry/demo/ to its own app, demo/: recipes stored with the old module path
("registry.demo.churn:retrain") would no longer import, so they are rewritten to the new one."""

from django.db import migrations

OLD_PACKAGE = "registry.demo"
NEW_PACKAGE = "demo"


def _renamed(path: str, old: str, new: str) -> str | None:
    """The path with package `old` replaced by `new`, or None when it is not in package `old`."""
    module, _, function = path.partition(":")
    if module == old or module.startswith(f"{old}."):
        return f"{new}{module[len(old) :]}:{function}"
    return None


def _rewrite(apps, old: str, new: str) -> None:
    RetrainingRecipe = apps.get_model("monitoring", "RetrainingRecipe")
    for recipe in RetrainingRecipe.objects.filter(callable_path__startswith=old).only("callable_path"):
        renamed = _renamed(recipe.callable_path, old, new)
        if renamed is not None:
            recipe.callable_path = renamed
            recipe.save(update_fields=["callable_path"])


def forwards(apps, schema_editor) -> None:
    _rewrite(apps, OLD_PACKAGE, NEW_PACKAGE)


def backwards(apps, schema_editor) -> None:
    _rewrite(apps, NEW_PACKAGE, OLD_PACKAGE)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_retraining_schedule"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
