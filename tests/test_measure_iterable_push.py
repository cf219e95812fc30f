"""The push measurement runs end to end on a small audience and reports change-only figures."""

from __future__ import annotations

import pytest

from devtools.measure_iterable_push import measure

pytestmark = pytest.mark.slow


def test_measurement_reports_change_only_reruns(tmp_path):
    figures = measure(3_000, tmp_path)
    assert figures["accepted"] == 3_000
    assert figures["requests"] == 3
    assert figures["rerun_unchanged_requests"] == 0
    assert figures["rerun_one_percent_sent"] == figures["one_percent_changed"] == 30
    assert figures["fraction_of_ceiling"] > 0
