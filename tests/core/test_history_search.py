"""Search across chats: every word, in the title or any message, any case, literally."""

from app.core.history import ChatHistory


def test_search_finds_chats_by_title_and_by_message(tmp_path):
    h = ChatHistory(tmp_path / "chats.sqlite3")
    lease = h.create("Office lease")
    h.add(lease.id, "user", "When does the lease end?")
    h.add(lease.id, "assistant", "It ends on 31 March 2027 [1].")
    budget = h.create("Budget questions")
    h.add(budget.id, "user", "What is the Zephyr budget?")
    h.add(budget.id, "assistant", "40,000 euros for 100% of the work [2].")

    assert [c.id for c in h.search("zephyr")] == [budget.id]  # a message, any case
    assert [c.id for c in h.search("LEASE")] == [lease.id]  # the title and messages
    assert [c.id for c in h.search("march lease")] == [lease.id]  # every word, anywhere
    assert h.search("march zephyr") == []  # not all in one chat
    assert [c.id for c in h.search("100%")] == [budget.id]  # % and _ taken literally
    assert h.search("1_0") == []
    assert {c.id for c in h.search("   ")} == {lease.id, budget.id}  # nothing typed: all
    h.close()
