"""A document's status in the library, as stored in its documents table.

A StrEnum: each member equals the string stored, so rows read back compare equal to members,
and JSON, SQL parameters and the window's labels keep the plain words.
"""

from __future__ import annotations

from enum import StrEnum


class DocStatus(StrEnum):
    READY = "ready"  # a version is live: its passages are searched
    INDEXING = "indexing"  # a first version being written
    QUEUED = "queued"  # reset by a re-index with another embedder, to be read again
    INTERRUPTED = "interrupted"  # a first version cut short by a crash or a quit
    CANCELLED = "cancelled"  # the user stopped it before it finished
    SKIPPED = "skipped"  # passed over on purpose (empty, scanned, not a document)
    FAILED = "failed"  # could not be read
    REMOVING = "removing"  # being deleted (recover() finishes a removal cut short)
