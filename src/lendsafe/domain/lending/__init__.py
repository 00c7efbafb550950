"""Lending: products, terms, schedules, accrual, allocation, delinquency, disclosure."""
