"""gunicorn config of the test project: each forked worker launches its own DBOS."""

import dbos_django

post_fork = dbos_django.post_fork
