"""The WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

import sys

from billing_sync import create_app
from billing_sync.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    print(f"billing-sync: configuration error: {error}", file=sys.stderr)
    sys.exit(2)
