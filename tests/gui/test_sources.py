"""Folders kept in sync in the window: a dropped folder becomes a source, a dropped file does
not; the watcher picks up a rename (re-pointed, not read again) and a deletion; the library
list is a model/view list with a filter box."""

from __future__ import annotations

from tests.gui.helpers import LONG, drop_files, status_of, wait_ingested


def test_a_dropped_folder_is_watched_and_kept_in_sync(qtbot, make_window, home, tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    a, b = docs / "a.txt", docs / "sub" / "b.txt"
    a.write_text("Harbour permits are renewed every spring by the warden. " * 5)
    b.write_text("The orchard budget covers ledger audits and quarry tariffs. " * 5)
    single = tmp_path / "single.txt"
    single.write_text("A lone file dropped by itself stays a single document. " * 5)
    window = make_window(home)
    drop_files(window, [docs, single])
    wait_ingested(qtbot, window, [a, b, single])
    qtbot.waitUntil(lambda: len(window.sources.sources) == 1, timeout=LONG)
    assert [s.path for s in window.sources.sources] == [str(docs)]  # the file is no source
    assert window.sources.isVisible()
    qtbot.waitUntil(lambda: window.documents.watcher.watched() == {str(docs)}, timeout=LONG)

    moved = docs / "renamed.txt"
    a.rename(moved)
    b.unlink()
    qtbot.waitUntil(
        lambda: (
            status_of(window, moved) == "ready"
            and str(a) not in window.library.documents()
            and str(b) not in window.library.documents()
            and not window.ingest_lane.busy()
        ),
        timeout=LONG,
    )
    doc = window.services.library.document(str(moved))
    assert doc is not None and doc.status == "ready"
    assert window.services.library.document(str(single)) is not None


def test_the_library_list_filters_by_name(qtbot):
    from app.core.library import DocumentRow
    from app.gui.lanes import LibrarySnapshot
    from app.gui.library_view import LibraryView

    view = LibraryView()
    qtbot.addWidget(view)
    rows = tuple(
        DocumentRow(
            i,
            f"/docs/{'report' if i % 2 else 'memo'}-{i:05}.txt",
            "h",
            None,
            1,
            1.0,
            "ready",
            None,
            3,
            1,
        )
        for i in range(2000)
    )
    view.set_snapshot(LibrarySnapshot(rows, 6000))
    assert len(view.documents()) == 2000 and view.list.count() == 2000
    assert view.filter.isVisibleTo(view)
    view.filter.setText("MEMO-0000")
    assert view.list.count() == 5  # memo-00000, -00002, ... -00008
    view.filter.setText("")
    view.file_done("/docs/report-00001.txt", "removed")
    assert "/docs/report-00001.txt" not in view.documents() and view.list.count() == 1999


def _row(i: int, path: str, status: str = "ready"):
    from app.core.library import DocumentRow

    return DocumentRow(i, path, "h", None, 1, 1.0, status, None, 3, 1)


def test_rows_come_and_go_in_place_in_slices_never_by_a_reset(qtbot):
    """A sync that edits and deletes a few files of many moves only those rows: the model is
    never reset, each slice of work ends by its deadline, the rows end sorted by name, and the
    selected document stays selected while rows come and go around it."""
    import random

    from PySide6.QtCore import QItemSelectionModel

    from app.gui import library_view
    from app.gui.lanes import LibrarySnapshot
    from app.gui.library_view import LibraryView

    rng = random.Random(7)
    view = LibraryView()
    qtbot.addWidget(view)
    resets = []
    view.model.modelReset.connect(lambda: resets.append(1))
    names = [f"/d{rng.randrange(9)}/{rng.choice('abcXYZ')}{i:04}.txt" for i in range(3000)]
    first = [_row(i, p) for i, p in enumerate(names[:2000])]
    view.set_snapshot(LibrarySnapshot(tuple(first), 0))
    slices = 0
    while not view.model.sync_to(view._rows.keys(), deadline=0.0):  # one run per call
        slices += 1
    assert slices > 1  # 2,000 new rows took several slices
    keep = first[1234].path
    view.list.selectionModel().setCurrentIndex(
        view.index_for(keep), QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    later = [r for r in first if rng.random() > 0.2 or r.path == keep]
    later += [_row(2000 + i, p) for i, p in enumerate(names[2000:])]
    view.set_snapshot(LibrarySnapshot(tuple(later), 0))
    while not view.model.sync_to(view._rows.keys(), deadline=0.0):
        pass
    want = sorted((r.path for r in later), key=lambda p: (p.rsplit("/", 1)[1].lower(), p))
    assert view.model.paths == want
    assert [view.list.item(i).data(library_view.PATH_ROLE) for i in range(3)] == want[:3]
    assert view.selected_paths() == [keep]  # it moved with its row
    assert view.model.row_of(keep) == want.index(keep)
    assert not resets


def test_the_filter_holds_while_rows_change_and_come(qtbot):
    """A status change does not refilter (names do not change), yet an inserted row is filtered
    and a removed one leaves."""
    from app.gui.lanes import LibrarySnapshot
    from app.gui.library_view import STATUS_ROLE, LibraryView

    view = LibraryView()
    qtbot.addWidget(view)
    rows = [_row(i, f"/docs/{'memo' if i % 2 else 'report'}-{i:03}.txt") for i in range(40)]
    view.set_snapshot(LibrarySnapshot(tuple(rows), 0))
    view._rebuild_now()
    view.filter.setText("memo")
    assert view.list.count() == 20
    changed = [_row(r.id, r.path, "failed" if r.id < 10 else "ready") for r in rows]
    changed += [_row(40, "/docs/memo-new.txt"), _row(41, "/docs/report-new.txt")]
    changed = [r for r in changed if r.path != "/docs/memo-001.txt"]
    view.set_snapshot(LibrarySnapshot(tuple(changed), 0))
    view._rebuild_now()
    shown = [view.list.item(i).text() for i in range(view.list.count())]
    assert "memo-new.txt" in shown and "report-new.txt" not in shown
    assert "memo-001.txt" not in shown and len(shown) == 20
    assert view.item_for("/docs/memo-003.txt").data(STATUS_ROLE) == "failed"


def test_progress_is_shown_at_most_every_interval_and_ends_on_the_latest(qtbot):
    """Hundreds of finished files a second do not lay the window out hundreds of times: the
    line changes at most every PROGRESS_MS, and what it shows in the end is the latest."""
    from app.gui.library_view import PROGRESS_MS, LibraryView

    view = LibraryView()
    qtbot.addWidget(view)
    shown = []
    view.progress_label.setText = lambda text, f=view.progress_label.setText: (
        shown.append(text),
        f(text),
    )
    for i in range(1, 301):
        view.set_progress(i, 300, f"Adding {i} of 300 documents")
    assert shown == ["Adding 1 of 300 documents"]  # the first at once, the rest wait
    qtbot.waitUntil(lambda: view.progress_label.text() == "Adding 300 of 300 documents")
    assert view.progress.value() == 300 and len(shown) == 2
    qtbot.wait(PROGRESS_MS * 2)
    assert len(shown) == 2  # nothing new: nothing shown again


def test_typing_a_filter_keeps_the_selection_and_a_filter_matching_nothing_is_not_an_empty_library(
    qtbot,
):
    from PySide6.QtCore import QItemSelectionModel

    from app.gui.lanes import LibrarySnapshot
    from app.gui.library_view import LibraryView

    view = LibraryView()
    qtbot.addWidget(view)
    rows = [_row(i, f"/docs/{'memo' if i % 2 else 'report'}-{i:03}.txt") for i in range(60)]
    view.set_snapshot(LibrarySnapshot(tuple(rows), 0))
    view._rebuild_now()
    keep = "/docs/memo-007.txt"
    view.list.selectionModel().setCurrentIndex(
        view.index_for(keep), QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    view.filter.setText("MEMO-00")  # any case
    assert view.list.count() == 5 and view.selected_paths() == [keep]
    view.filter.setText("")
    assert view.list.count() == 60 and view.selected_paths() == [keep]
    # Each longer text looks among the rows listed; another text among all of them, and a
    # document that arrived meanwhile is found by either.
    view.filter.setText("memo")
    assert view.list.count() == 30
    view.file_done("/docs/memo-new.txt", "ready", 1, 1)
    view.filter.setText("memo-0")
    view.filter.setText("emo-0")
    shown = {view.list.item(i).text() for i in range(view.list.count())}
    assert len(shown) == 30 and all("emo-0" in name for name in shown)
    view.filter.setText("emo-n")  # at once, not after the next rebuild
    assert [view.list.item(i).text() for i in range(view.list.count())] == ["memo-new.txt"]
    view.filter.setText("nothing like it")
    assert view.list.count() == 0
    assert view.stack.currentWidget() is view.list  # not "No documents yet"
    assert view.selected_paths() == []  # a hidden document is not selected (Delete spares it)
    assert len(view.documents()) == 61
