import datetime

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def expire_existing_tokens(apps, schema_editor):
    # Tokens issued before expiry existed get the default lifetime from now, not from their creation:
    # counting from creation could stop a long-running application the moment this migration runs.
    Consumer = apps.get_model("registry", "Consumer")
    expires_at = timezone.now() + datetime.timedelta(days=settings.MF_CONSUMER_TOKEN_DAYS)
    Consumer.objects.exclude(token_hash="").filter(token_expires_at=None).update(token_expires_at=expires_at)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0004_consumer_rate_limit"),
    ]

    operations = [
        migrations.AddField(
            model_name="consumer",
            name="token_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="consumer",
            name="token_revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(expire_existing_tokens, migrations.RunPython.noop),
    ]
