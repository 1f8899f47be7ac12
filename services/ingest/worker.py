"""Entry point for `celery -A services.ingest.worker worker -Q ingest`."""

from services.ingest.tasks import create_worker

app = create_worker()
