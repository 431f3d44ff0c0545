"""Origin access control (CloudFront's OAC) for S3 origins, and their secrets encrypted at rest.

The OAC settings are fields of the S3 origin rather than a resource that origins reference
as in CloudFront: there an OAC carries no credentials (CloudFront signs as itself and the
bucket policy names the distribution), so what origins would share is three enums, while
the credentials here belong to one bucket and one IAM user. Fields keep one write path (the
distribution with its ETag), one publication per change and no cross-owner reference to
check; a shared resource can be introduced later by moving them.

Existing rows keep working: their signing_behavior is empty, which follows the credentials
(a row with credentials signs with them, what they were entered for; one without stays
unsigned), all path-style as before; stored secrets are encrypted with the first key of
CDN_SECRET_KEYS (refused, naming the setting, when there is a secret and no key).
"""

import distributions.crypto
from django.db import migrations, models


def _rows(schema_editor, column):
    table = schema_editor.connection.ops.quote_name("distributions_origin")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {column} FROM {table} WHERE {column} <> ''")
        return table, list(cursor.fetchall())


def _recode(schema_editor, code):
    table, rows = _rows(schema_editor, "secret_access_key")
    with schema_editor.connection.cursor() as cursor:
        for pk, value in rows:
            cursor.execute(f"UPDATE {table} SET secret_access_key = %s WHERE id = %s", [code(value), pk])


def forwards(apps, schema_editor):
    _recode(schema_editor, distributions.crypto.encrypt)


def backwards(apps, schema_editor):
    _recode(schema_editor, distributions.crypto.decrypt)


class Migration(migrations.Migration):

    dependencies = [
        ('distributions', '0004_plain_url_fields'),
    ]

    operations = [
        migrations.AddField(
            model_name='origin',
            name='addressing_style',
            field=models.CharField(choices=[('path', 'path-style ({endpoint}/{bucket}/key)'), ('virtual', 'virtual-hosted ({bucket}.{endpoint host}/key)')], default='path', max_length=8),
        ),
        migrations.AddField(
            model_name='origin',
            name='session_token',
            field=distributions.crypto.EncryptedTextField(blank=True, help_text='Only for temporary (STS) credentials.'),
        ),
        migrations.AddField(
            model_name='origin',
            name='signing_behavior',
            field=models.CharField(blank=True, choices=[('always', 'Always'), ('never', 'Never'), ('no-override', 'no-override (unless the viewer sent Authorization)')], help_text="Empty: 'always' when the origin has credentials, else 'never' (a public bucket).", max_length=16),
        ),
        migrations.AddField(
            model_name='origin',
            name='signing_protocol',
            field=models.CharField(choices=[('sigv4', 'SigV4')], default='sigv4', max_length=8),
        ),
        migrations.AlterField(
            model_name='origin',
            name='secret_access_key',
            field=distributions.crypto.EncryptedTextField(blank=True),
        ),
        migrations.RunPython(forwards, backwards),
    ]
