"""`python -m app` does what the `confidant` command does."""

from app.cli import main

raise SystemExit(main())
