"""The end-to-end tests, run against the compose stack where a Docker engine answers (skipped with
the reason elsewhere). They are the same functions as in tests/e2e, collected here a second time:
this tier's conftest gives them the compose stack as `stack`, `api`, `bootstrap` and `browser`.

Left to the local tier: the launcher (`make run`, `make stop`), the replay test (it reads the
advocacy service's database directly), the leak scan (it reads every process's log file and every
database), the rebuild (it runs the command in the local checkout) and Kafka's console consumer
(it needs the local jars)."""

from __future__ import annotations

import pytest

from tests.e2e.test_advocacy import (  # noqa: F401
    test_a_case_at_imminent_risk_gets_a_draft_within_seconds_and_issuing_it_shows_on_the_case,
    test_a_request_for_three_cases_denied_shows_on_each_case_with_the_date,
    test_letters_name_only_named_cases_and_the_name_read_is_audited,
)
from tests.e2e.test_browser import (  # noqa: F401
    page,
    test_a_caseworker_files_reports_fixes_an_error_and_moves_the_case,
    test_a_caseworker_reviews_a_possible_duplicate_and_merges_it,
    test_a_forged_form_without_the_csrf_token_is_refused,
    test_a_report_in_korean,
    test_an_advocate_sees_the_urgent_draft_issues_it_and_downloads_the_letter,
)
from tests.e2e.test_faults import (  # noqa: F401
    test_a_consumer_killed_mid_stream_loses_nothing_and_duplicates_nothing,
    test_a_restart_of_the_whole_stack_keeps_every_case_and_every_event,
    test_poison_goes_to_the_dead_letter_topic_and_the_consumer_goes_on,
    test_with_the_database_down_reports_are_refused_cleanly_and_nothing_is_lost,
    test_with_the_broker_down_reports_are_saved_and_their_cases_open_once_it_is_back,
)
from tests.e2e.test_flow import (  # noqa: F401
    test_a_case_moves_by_the_table_and_each_move_is_an_event,
    test_a_confirmed_duplicate_is_merged_and_both_case_histories_say_so,
    test_a_posted_report_appears_as_a_case_within_seconds,
    test_every_service_is_healthy_ready_and_documented,
    test_the_case_list_filters_and_pages,
)
from tests.e2e.test_reporting import (  # noqa: F401
    test_the_consumer_counts_cases_by_business_date_and_a_snapshot_reaches_its_cases,
)

# The whole compose stack's first start builds the image and pulls Kafka and MongoDB.
pytestmark = pytest.mark.timeout(1800)
