"""The core: pure Python, never imports Qt (an import-linter contract in pyproject enforces it).

Long work is exposed as generators of small event dataclasses (see events.py); every yield is a
progress report and a point where a CancelToken is honoured.
"""
