"""WSGI entry for a WSGI server (`services.console.wsgi:app`); the stack and compose run the
console with `python -m services.console`."""

from services.console import create_app

app = create_app()
