"""Entry point for `celery -A services.train.worker worker -Q train`."""

from services.train.tasks import create_worker

app = create_worker()
