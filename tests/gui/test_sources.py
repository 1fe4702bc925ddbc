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
