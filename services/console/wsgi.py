"""gunicorn entry: `gunicorn services.console.wsgi:app`."""

from services.console import create_app

app = create_app()
