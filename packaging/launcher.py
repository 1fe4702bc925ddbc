"""Entry point of the frozen bundle: what `confidant` (the console script) does, frozen.

freeze_support() lets multiprocessing workers (ingestion may use a process pool) start from the
frozen executable. Exit like app/cli.py's __main__ (os._exit: no teardown of model threads),
after flushing, since os._exit skips it.
"""

import multiprocessing
import os
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.cli import main

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
