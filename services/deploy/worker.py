"""Entry point for `celery -A services.deploy.worker worker -Q deploy`."""

from services.deploy.tasks import create_worker

app = create_worker()
