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

from sqlalchemy import Connection, select

from lendsafe.adapters.db import restructure_tables as rt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.reminder_dispatch_store import overdue_notice_sent
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
    notice = None
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
        seq = connection.execute(select(t.installments.c.seq).where(
            t.installments.c.loan_id == loan_id, t.installments.c.due_date == due)
            .order_by(t.installments.c.seq).limit(1)).scalar()
        sent = None if seq is None else overdue_notice_sent(connection, loan_id, seq, due)
        if sent is not None and sent.sent_at.date() > on:  # not yet sent on the day asked
            sent = None
        notice = None if sent is None else {
            "step": sent.step_code, "channel": sent.channel, "sent_at": sent.sent_at.isoformat(),
            "delivered": sent.delivered_at is not None}
        if sent is None:
            reasons.append(_reason("credit.notice_not_sent", due=due.isoformat()))
    for flag in active:
        if flag["suppress_negative"]:
            reasons.append(_reason("credit.suppressed", source=flag["source"],
                                   until=flag["until"] or "-"))
    return {"loan_id": loan_id, "on": on.isoformat(), "negative_allowed": not reasons,
            "days_past_due": int(loan.days_past_due or 0), "reasons": reasons,
            "overdue_notice": notice, "flags": active}
