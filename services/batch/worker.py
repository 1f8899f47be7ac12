"""Entry point for `celery -A services.batch.worker worker -Q batch`."""

from services.batch.tasks import create_worker

app = create_worker()
