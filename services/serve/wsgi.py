"""gunicorn entry point: `gunicorn services.serve.wsgi:app` (without --preload: one poller per worker)."""

from services.serve import create_app

app = create_app()
