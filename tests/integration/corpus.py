"""A small library with known facts on known pages, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

from tests.pdfmaker import make_docx, make_pdf

HANDBOOK_PAGES = [
    "Staff Handbook of the Brindle Harbour Museum.\nWelcome to the team. This handbook explains "
    "how the museum works day to day.",
    "Safety.\nIf the fire alarm sounds, leave by the nearest exit and gather at the emergency "
    "assembly point, which is the north car park beside the bicycle shed. Wardens count staff "
    "there.",
    "Money.\nExpense reports must be submitted to the finance office within thirty days of the "
    "purchase, with the original receipts attached.",
    "Collections.\nThe oldest object in the collection is a bronze astrolabe made in 1432. "
    "Object loans are approved by the registrar, Ms Okonkwo.",
]

HANDBOOK_OUTLINE = [(0, "Safety", 1), (0, "Money", 2), (0, "Collections", 3)]


def build_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "handbook": make_pdf(folder / "handbook.pdf", HANDBOOK_PAGES, HANDBOOK_OUTLINE),
        "leave": make_docx(
            folder / "leave policy.docx",
            [
                (1, "Leave policy"),
                "Every employee receives twenty-seven days of paid "
                "holiday per calendar year, plus public holidays.",
            ],
        ),
        "notes": folder / "visitor notes.html",
        "wifi": folder / "wifi.txt",
    }
    files["notes"].write_text(
        "<html><head><title>Visitor notes</title><script>var tracking = 'zzscriptzz';</script>"
        "<style>body{color:red}</style></head><body><h1>Visitor notes</h1><p>The museum cafe "
        "serves lemon cake on Sundays only.</p></body></html>",
        encoding="utf-8",
    )
    files["wifi"].write_text(
        "The guest wireless network is called BrindleGuest and its code is KX-4471-PELICAN.\n",
        encoding="utf-8",
    )
    return files
