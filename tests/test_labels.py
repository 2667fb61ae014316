"""The dashboard's words for codes, states and events: every Alipay code of the protocol's error table has its
meaning in both languages, and the Chinese one is the table's own (the catalogue can never drift from it)."""

from __future__ import annotations

import pytest

from refund_adapter.channels.mapi.errors import ERROR_CODES
from refund_adapter.models import BatchState, RefundState, ReportState
from refund_adapter.web.i18n import load_translations
from refund_adapter.web.labels import CODE_MEANINGS, STATES, labeller, template_globals

CHINESE = load_translations()["zh_Hans"].gettext


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_code_of_the_error_table_shows_the_tables_meaning_in_chinese(code: str) -> None:
    assert CHINESE(CODE_MEANINGS[code]) == ERROR_CODES[code].meaning


def test_every_state_has_a_name() -> None:
    states = {s.value for kind in (RefundState, ReportState, BatchState) for s in kind}
    assert states <= set(STATES)


def test_an_unknown_key_shows_as_itself_and_an_unknown_code_without_a_meaning() -> None:
    label = labeller(STATES, CHINESE)
    assert (label("succeeded"), label("<b>new</b>"), label(None)) == ("成功", "<b>new</b>", "")
    meaning = template_globals(CHINESE)["meaning"]
    assert (meaning("TRADE_HAS_CLOSED"), meaning("NOT_A_CODE")) == ("交易已关闭，不允许退款", "")
