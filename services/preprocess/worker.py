"""Entry point for `celery -A services.preprocess.worker worker -Q preprocess`."""

from services.preprocess.tasks import create_worker

app = create_worker()
