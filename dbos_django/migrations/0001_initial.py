from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="TransactionOutput",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("workflow_uuid", models.TextField()),
                ("function_id", models.IntegerField()),
                ("output", models.TextField(null=True)),
                ("created_at", models.BigIntegerField()),
            ],
            options={"db_table": "dbos_transaction_outputs"},
        ),
        migrations.AddConstraint(
            model_name="transactionoutput",
            constraint=models.UniqueConstraint(
                fields=("workflow_uuid", "function_id"), name="dbos_transaction_output_once"
            ),
        ),
        migrations.CreateModel(
            name="Workflow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "workflow",
                "verbose_name_plural": "workflows",
                "managed": False,
                "default_permissions": ("view", "change"),
            },
        ),
    ]
