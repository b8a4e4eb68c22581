"""The case page's short wait for a case that is opening (services/case/web.py)."""

from __future__ import annotations

from services.case import web as case_web


class OpensOnThirdLook:
    """A store whose case appears on the third read, as one opening moments later would."""

    def __init__(self):
        self.reads = 0

    def get(self, case_id):
        self.reads += 1
        return {"_id": case_id} if self.reads >= 3 else None


class NeverOpens:
    def __init__(self):
        self.reads = 0

    def get(self, case_id):
        self.reads += 1


def test_a_case_that_opens_during_the_wait_is_shown():
    store = OpensOnThirdLook()
    assert case_web._when_it_opens(store, "c-1", wait_s=5) == {"_id": "c-1"}
    assert store.reads == 3


def test_the_wait_ends_after_its_time():
    store = NeverOpens()
    assert case_web._when_it_opens(store, "c-1", wait_s=0.6) is None
    assert 1 <= store.reads <= 3
