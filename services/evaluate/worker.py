"""Entry point for `celery -A services.evaluate.worker worker -Q evaluate`."""

from services.evaluate.tasks import create_worker

app = create_worker()
