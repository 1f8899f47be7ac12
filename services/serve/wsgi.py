"""gunicorn entry: `gunicorn services.serve.wsgi:app` (no --preload: one poller per worker)."""

from services.serve import create_app

app = create_app()
