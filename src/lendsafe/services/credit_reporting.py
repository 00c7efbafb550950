"""Credit-reporting flags and the gate before any negative credit report.

This is the seam the industry information-sharing part will read; it reports nothing
itself. Two facts decide whether a negative record may be reported for a loan on a day:

* **flags** (``credit_reporting_flags``): every restructuring and relief event writes one
  (``forbearance`` / ``relief``) in its own transaction, with the days it covers and
  whether negative reporting is suppressed (e.g. the 2020 epidemic rules, the CARES Act);
* **the legally required overdue notice** (CN, 《征信业管理条例》 art. 15): the borrower
  must have been told before negative information is reported, so the instalment that
  made the loan overdue must have had a legally required overdue notice sent
  (the reminder outbox records it).

:func:`reporting_gate` answers with reason codes and texts in English and Chinese.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, select

from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_tables import reminders
from lendsafe.adapters.db.repository import NotFound
from lendsafe.domain.calendar import day_number, from_day_number

_REASONS = {
    "credit.not_overdue": ("the loan is not past due: there is nothing negative to report",
                           "借款未逾期，无负面信息可报送"),
    "credit.suppressed": ("negative reporting is suppressed by {source} until {until}",
                          "{source}期间（至{until}）暂停报送负面信息"),
    "credit.notice_not_sent": ("the legally required overdue notice for the instalment due "
                               "{due} has not been sent; the borrower must be told first",
                               "{due}到期的逾期通知尚未发送，报送负面信息前须先告知借款人"),
    "credit.loan_not_active": ("the loan is {status}", "借款状态为{status}"),
}


def _reason(code: str, **figures: str) -> dict[str, str]:
    en, zh = _REASONS[code]
    return {"code": code, "text_en": en.format(**figures), "text_zh": zh.format(**figures)}


def flags(connection: Connection, *, on: date | None = None,
          loan_id: int | None = None) -> list[dict[str, Any]]:
    """The flags (of one loan, or all), or only those in force on ``on``."""
    f = rt.credit_flags.c
    query = select(rt.credit_flags).order_by(f.loan_id, f.from_day, f.id)
    if loan_id is not None:
        query = query.where(f.loan_id == loan_id)
    if on is not None:
        day = day_number(on)
        query = query.where(f.from_day <= day, (f.until_day.is_(None)) | (f.until_day >= day))
    return [{"loan_id": int(row.loan_id), "flag": row.flag,
             "from": from_day_number(row.from_day).isoformat(),
             "until": None if row.until_day is None else from_day_number(row.until_day).isoformat(),
             "suppress_negative": bool(row.suppress_negative), "source": row.source}
            for row in connection.execute(query)]


def reporting_gate(connection: Connection, loan_id: int, on: date) -> dict[str, Any]:
    """May a negative record be reported for ``loan_id`` on ``on``? With every reason."""
    loan = connection.execute(select(t.loans.c.status, t.loans.c.days_past_due,
                                     t.loans.c.oldest_unpaid_due_day).where(
        t.loans.c.id == loan_id)).first()
    if loan is None:
        raise NotFound(f"loan {loan_id} does not exist")
    active = flags(connection, on=on, loan_id=loan_id)
    reasons = []
    if loan.status not in ("active", "charged_off"):
        reasons.append(_reason("credit.loan_not_active", status=str(loan.status)))
    elif not loan.days_past_due or loan.oldest_unpaid_due_day is None:
        reasons.append(_reason("credit.not_overdue"))
    else:
        due = from_day_number(int(loan.oldest_unpaid_due_day))
        if not _notice_sent(connection, loan_id, due):
            reasons.append(_reason("credit.notice_not_sent", due=due.isoformat()))
    for flag in active:
        if flag["suppress_negative"]:
            reasons.append(_reason("credit.suppressed", source=flag["source"],
                                   until=flag["until"] or "-"))
    return {"loan_id": loan_id, "on": on.isoformat(), "negative_allowed": not reasons,
            "days_past_due": int(loan.days_past_due or 0), "reasons": reasons,
            "flags": active}


def _notice_sent(connection: Connection, loan_id: int, due: date) -> bool:
    """A legally required overdue notice of the instalment due on ``due`` was sent."""
    r = reminders.c
    return connection.execute(select(r.id).where(and_(
        r.loan_id == loan_id, r.due_date == due, r.legally_required == True,  # noqa: E712
        r.step_key.like("rem:%"), r.step_code.like("T+%"), r.sent_at.is_not(None))
    ).limit(1)).first() is not None
