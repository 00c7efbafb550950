"""Origination: credit policy as data, offers priced for risk, decisions and availability.

Pure code (no I/O, no clock): the service loads the facts and the model's PD and calls
:func:`lendsafe.domain.origination.decision.decide`.
"""
