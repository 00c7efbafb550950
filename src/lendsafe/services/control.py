"""Internal control use cases: staff users and roles, login (password + TOTP, borrower
one-time code), sessions, throttling, maker-checker on sensitive actions, personal data.

Every state change writes an audit record and seals the ledger in its own transaction (see
``lendsafe.services.audit`` and ``lendsafe.services.ledger``). Sensitive actions plug in
with :meth:`Security.register_sensitive_action` (or the module-level
:func:`register_sensitive_action`, collected by :func:`build_security`); the handlers for
role grants, payment reversals, write-off overrides and product changes live at the end
of this module. The last three apply lending use cases (``LendingService.reverse_payment``,
``write_off``, ``change_product``) in the approval's transaction, so the loan, the journal,
the lending listeners (audit, reminders, ledger sealer) and the decision commit together.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from lendsafe.adapters.channels.base import ChannelAdapter, OutboundMessage
from lendsafe.adapters.db import control_tables as ct
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.security.passwords import MIN_LENGTH, hash_password, verify_password
from lendsafe.adapters.security.pii import KeyRing, KeyRingError, Sealed
from lendsafe.adapters.security.tokens import TokenError, TokenSigner
from lendsafe.domain.control.approvals import ActionStatus, PendingAction, decision_problems
from lendsafe.domain.control.masking import mask_pii
from lendsafe.domain.control.roles import RoleCatalogue
from lendsafe.domain.control.throttle import (
    ADDRESS_POLICY,
    USER_POLICY,
    ThrottlePolicy,
    ThrottleState,
    after_failure,
    locked,
)
from lendsafe.domain.control.totp import verify_totp
from lendsafe.domain.ledger.canonical import canonical_json
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services import audit as audit_service
from lendsafe.services.access import (
    Forbidden,
    Principal,
    Unauthenticated,
    authenticate,
    require,
    role_catalogue,
)
from lendsafe.services.audit import AuditLog, micros
from lendsafe.services.ledger import Ledger
from lendsafe.services.lending import LendingService, NotFound, reversal_document

Clock = Callable[[], datetime]
ApplyHandler = Callable[[Connection, PendingAction, str], dict[str, Any]]
DescribeHandler = Callable[[Connection, PendingAction], dict[str, Any]]
PII_FIELDS = ("name", "national_id", "phone", "address")
OTP_SECONDS = 300
OTP_ATTEMPTS = 5


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SensitiveAction:
    """A kind of change that needs a second person: how to apply it and who may approve."""

    kind: str
    apply: ApplyHandler
    permission: str
    describe: DescribeHandler | None = None


_REGISTRY: dict[str, SensitiveAction] = {}


def register_sensitive_action(kind: str, apply_handler: ApplyHandler, permission: str,
                              describe: DescribeHandler | None = None) -> None:
    """Register a kind for every :class:`Security` built afterwards (other issues plug in)."""
    _REGISTRY[kind] = SensitiveAction(kind, apply_handler, permission, describe)


@dataclass
class Security:
    """The control services over one database."""

    engine: Engine
    roles: RoleCatalogue
    audit: AuditLog
    ledger: Ledger
    keyring: KeyRing
    tokens: TokenSigner
    channel: ChannelAdapter | None = None
    clock: Clock = _utc_now
    session_seconds: int = 900
    policy: ThrottlePolicy = USER_POLICY
    address_policy: ThrottlePolicy = ADDRESS_POLICY
    actions: dict[str, SensitiveAction] = field(default_factory=dict)

    # -- plumbing ------------------------------------------------------------------
    def now_micros(self) -> int:
        """Now, in microseconds since the epoch."""
        return micros(self.clock())

    def _commit(self, connection: Connection, actor: str, action: str, **details: Any) -> int:
        """Audit one change and seal the ledger, in the caller's transaction."""
        record_id = self.audit.record(connection, actor=actor, action=action, **details)
        self.ledger.seal(connection, actor=actor)
        return record_id

    def register_sensitive_action(self, kind: str, apply_handler: ApplyHandler,
                                  permission: str, describe: DescribeHandler | None = None
                                  ) -> None:
        """Put ``kind`` under maker-checker: approval needs ``permission`` and applies it."""
        if permission not in self.roles.permissions:
            raise ValueError(f"unknown permission {permission!r}: add it to roles.toml")
        self.actions[kind] = SensitiveAction(kind, apply_handler, permission, describe)

    # -- users and roles -----------------------------------------------------------
    def create_user(self, username: str, password: str, roles: tuple[str, ...] = (),
                    actor: str = "cli", reason: str = "operator") -> int:
        """A staff user; ``roles`` are granted at once (operator/bootstrap path, audited)."""
        problems = self._password_problems(password)
        for role in roles:
            self.roles.role(role)
        problems += self.roles.conflicts(roles)
        if problems:
            raise Refused(problems)
        with self.engine.begin() as connection:
            if connection.execute(select(ct.users.c.id).where(
                    ct.users.c.username == username)).first():
                raise Refused([Problem("control.user_exists", f"user {username!r} exists")])
            user_id = int(connection.execute(insert(ct.users).values(
                username=username, password_hash=hash_password(password),
                created_micros=self.now_micros())).inserted_primary_key[0])  # type: ignore[index]
            for role in roles:
                self._grant(connection, user_id, role, actor)
            self._commit(connection, actor, "user.create", target=f"user:{username}",
                         after={"username": username, "roles": sorted(roles)}, reason=reason)
        return user_id

    @staticmethod
    def _password_problems(password: str) -> list[Problem]:
        if len(password) < MIN_LENGTH:
            return [Problem("auth.password_short", f"a password needs {MIN_LENGTH} or more "
                            "characters", field="password")]
        return []

    def _grant(self, connection: Connection, user_id: int, role: str, actor: str) -> None:
        connection.execute(insert(ct.user_roles).values(
            user_id=user_id, role=role, granted_by=actor, granted_micros=self.now_micros()))

    def user_roles(self, connection: Connection, user_id: int) -> list[str]:
        """The roles a user holds."""
        return sorted(connection.execute(select(ct.user_roles.c.role).where(
            ct.user_roles.c.user_id == user_id)).scalars())

    def user_id(self, connection: Connection, username: str) -> int:
        """The id of ``username``; refused when unknown."""
        found = connection.execute(select(ct.users.c.id).where(
            ct.users.c.username == username)).scalar()
        if found is None:
            raise Refused([Problem("control.user_unknown", f"no user {username!r}")])
        return int(found)

    def set_totp(self, username: str, actor: str = "cli") -> bytes:
        """Turn on TOTP for a user; returns the secret (shown once, stored encrypted)."""
        secret = secrets.token_bytes(20)
        sealed = self.keyring.seal({"totp": secret.hex()}, f"user:{username}")
        with self.engine.begin() as connection:
            self.user_id(connection, username)
            connection.execute(update(ct.users).where(ct.users.c.username == username).values(
                totp_secret=sealed.wrapped_key + b"|" + sealed.ciphertext,
                totp_kid=sealed.kek_id))
            self._commit(connection, actor, "user.totp_enabled", target=f"user:{username}")
        return secret

    def _totp_secret(self, row: Any) -> bytes | None:
        if row.totp_secret is None:
            return None
        blob = bytes(row.totp_secret)
        # the wrapped key has a fixed size (nonce 12 + key 32 + tag 16), then "|", then the rest
        wrapped, ciphertext = blob[:60], blob[61:]
        document = self.keyring.open(Sealed(row.totp_kid, wrapped, ciphertext),
                                     f"user:{row.username}")
        return bytes.fromhex(document["totp"])

    def conflicts(self) -> list[dict[str, Any]]:
        """Users whose roles together break a segregation rule (should be none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(ct.users.c.username, ct.user_roles.c.role).join(
                ct.user_roles, ct.user_roles.c.user_id == ct.users.c.id)).all()
        by_user: dict[str, list[str]] = {}
        for username, role in rows:
            by_user.setdefault(username, []).append(role)
        return [{"user": user, "roles": sorted(roles), "problem": p.as_dict()}
                for user, roles in sorted(by_user.items()) for p in self.roles.conflicts(roles)]

    # -- throttling ----------------------------------------------------------------
    def _throttle(self, connection: Connection, key: str) -> ThrottleState:
        row = connection.execute(select(ct.login_throttle).where(
            ct.login_throttle.c.key == key)).first()
        return ThrottleState() if row is None else ThrottleState(
            row.failures, row.locked_until_micros, row.last_failure_micros)

    def _locked_out(self, keys: list[str]) -> bool:
        now = self.now_micros()
        with self.engine.connect() as connection:
            return any(locked(self._throttle(connection, k), now) for k in keys)

    def _fail(self, keys: list[str], action: str, target: str, ip: str | None,
              why: str) -> None:
        now = self.now_micros()
        with self.engine.begin() as connection:
            for key in keys:
                policy = self.address_policy if key.startswith("ip:") else self.policy
                state = after_failure(self._throttle(connection, key), now, policy)
                values = {"failures": state.failures, "last_failure_micros": now,
                          "locked_until_micros": state.locked_until_micros}
                done = connection.execute(update(ct.login_throttle).where(
                    ct.login_throttle.c.key == key).values(values))
                if done.rowcount == 0:
                    connection.execute(insert(ct.login_throttle).values(key=key, **values))
            self._commit(connection, "anonymous", action, target=target,
                         after={"ip": ip, "why": why})

    def _succeed(self, connection: Connection, keys: list[str]) -> None:
        """A success clears the user's (or phone's) count; an address keeps its own."""
        own = [k for k in keys if not k.startswith("ip:")]
        connection.execute(ct.login_throttle.delete().where(ct.login_throttle.c.key.in_(own)))

    # -- sessions ------------------------------------------------------------------
    def _session(self, connection: Connection, subject: str) -> str:
        session_id = secrets.token_urlsafe(18)
        now = self.now_micros()
        expires = now + self.session_seconds * 1_000_000
        connection.execute(insert(ct.sessions).values(
            id=session_id, subject=subject, created_micros=now, expires_micros=expires))
        return self.tokens.issue(session_id, subject, now // 1_000_000, expires // 1_000_000)

    def login(self, username: str, password: str, totp_code: str | None = None,
              ip: str | None = None) -> dict[str, Any]:
        """Password (+ TOTP when enabled) login; a short-lived token on success."""
        keys = [f"user:{username[:64]}"] + ([f"ip:{ip}"] if ip else [])
        if self._locked_out(keys):
            self._fail(keys, "auth.locked", f"user:{username[:64]}", ip, "locked out")
            raise Unauthenticated("too many failed attempts; try again later")
        with self.engine.connect() as connection:
            row = connection.execute(select(ct.users).where(
                ct.users.c.username == username)).first()
        good = verify_password(None if row is None else row.password_hash, password)
        if good and row is not None and row.totp_secret is not None:
            secret = self._totp_secret(row)
            good = bool(totp_code) and secret is not None and verify_totp(
                secret, totp_code or "", self.now_micros() // 1_000_000)
        if not good or row is None or row.disabled_micros is not None:
            self._fail(keys, "auth.login_failed", f"user:{username[:64]}", ip, "bad credentials")
            raise Unauthenticated("invalid credentials")
        return self._open_staff_session(row, keys, ip)

    def _open_staff_session(self, row: Any, keys: list[str], ip: str | None) -> dict[str, Any]:
        with self.engine.begin() as connection:
            roles = self.user_roles(connection, row.id)
            conflicts = self.roles.conflicts(roles)
            if conflicts:
                self._commit(connection, f"user:{row.username}", "control.sod_refused",
                             target=f"user:{row.username}",
                             after={"roles": roles, "problems": [p.as_dict() for p in conflicts]})
            else:
                self._succeed(connection, keys)
                token = self._session(connection, f"user:{row.username}")
                self._commit(connection, f"user:{row.username}", "auth.login",
                             target=f"user:{row.username}", after={"ip": ip})
        if conflicts:
            raise Forbidden("this user holds conflicting roles; an administrator must fix them")
        return {"token": token, "expires_in": self.session_seconds, "roles": roles}

    def resolve(self, secret: str | None) -> Principal:
        """The principal behind a session token or an API key; Unauthenticated otherwise."""
        if not secret or len(secret) > 1024:
            raise Unauthenticated("missing or malformed credentials")
        if not secret.startswith("lst1."):
            return authenticate(self.engine, secret)
        try:
            claims = self.tokens.check(secret, self.now_micros() // 1_000_000)
        except TokenError:
            raise Unauthenticated("invalid or expired token") from None
        with self.engine.connect() as connection:
            session = connection.execute(select(ct.sessions).where(
                ct.sessions.c.id == claims.session_id)).first()
            if session is None or session.revoked_micros is not None \
                    or session.subject != claims.subject \
                    or session.expires_micros <= self.now_micros():
                raise Unauthenticated("invalid or expired token")
            return self._principal(connection, claims.subject, claims.session_id)

    def _principal(self, connection: Connection, subject: str, session_id: str) -> Principal:
        kind, _, name = subject.partition(":")
        if kind == "borrower":
            return Principal(subject, "borrower", borrower_id=int(name), session_id=session_id,
                             via="otp")
        user = connection.execute(select(ct.users).where(ct.users.c.username == name)).first()
        if user is None or user.disabled_micros is not None:
            raise Unauthenticated("invalid or expired token")
        roles = self.user_roles(connection, user.id)
        if not roles:
            raise Forbidden("this user holds no role yet")
        if self.roles.conflicts(roles):
            raise Forbidden("this user holds conflicting roles; an administrator must fix them")
        return Principal(subject, roles[0], roles=frozenset(roles),
                         permissions=self.roles.permissions_of(roles), session_id=session_id,
                         via="password")

    def logout(self, principal: Principal) -> None:
        """Revoke the caller's session (its token stops working at once)."""
        if principal.session_id is None:
            raise Forbidden("an API key has no session to end")
        with self.engine.begin() as connection:
            connection.execute(update(ct.sessions).where(
                ct.sessions.c.id == principal.session_id).values(
                revoked_micros=self.now_micros()))
            self._commit(connection, principal.subject, "auth.logout",
                         target=f"session:{principal.session_id[:8]}")

    # -- borrower one-time codes ---------------------------------------------------
    def request_otp(self, phone: str, ip: str | None = None) -> None:
        """Send a one-time code to a known borrower phone; says nothing about unknown ones."""
        index = self.keyring.phone_index(phone)
        keys = [f"otp:{index[:32]}"] + ([f"ip:{ip}"] if ip else [])
        if self._locked_out(keys):
            return
        with self.engine.connect() as connection:
            borrower_id = connection.execute(select(ct.borrower_pii.c.borrower_id).where(
                ct.borrower_pii.c.phone_index == index)).scalar()
        if borrower_id is None:
            self._fail(keys, "auth.otp_failed", "phone:unknown", ip, "unknown phone")
            return
        code = f"{secrets.randbelow(10**6):06d}"
        now = self.now_micros()
        with self.engine.begin() as connection:
            challenge = connection.execute(insert(ct.otp_challenges).values(
                phone_index=index, borrower_id=borrower_id, code_hash=_code_hash(index, code),
                created_micros=now, expires_micros=now + OTP_SECONDS * 1_000_000, attempts=0
            )).inserted_primary_key[0]  # type: ignore[index]
            self._commit(connection, "anonymous", "auth.otp_sent",
                         target=f"borrower:{borrower_id}", after={"ip": ip})
        if self.channel is not None:
            self.channel.send(OutboundMessage(
                dedup_key=f"otp-{challenge}", loan_id="-", channel="sms", step="otp",
                recipient=phone, subject="lendsafe code",
                body=f"Your lendsafe code is {code}. It expires in 5 minutes.",
                language="en"))

    def verify_otp(self, phone: str, code: str, ip: str | None = None) -> dict[str, Any]:
        """Exchange a valid one-time code for a borrower session token."""
        index = self.keyring.phone_index(phone)
        keys = [f"otp:{index[:32]}"] + ([f"ip:{ip}"] if ip else [])
        if self._locked_out(keys):
            raise Unauthenticated("too many failed attempts; try again later")
        now = self.now_micros()
        with self.engine.begin() as connection:
            row = connection.execute(select(ct.otp_challenges).where(
                ct.otp_challenges.c.phone_index == index, ct.otp_challenges.c.used_micros.is_(None)
            ).order_by(ct.otp_challenges.c.id.desc()).limit(1)).first()
            good = (row is not None and row.expires_micros > now and row.attempts < OTP_ATTEMPTS
                    and hmac.compare_digest(row.code_hash, _code_hash(index, code)))
            if row is not None:
                connection.execute(update(ct.otp_challenges).where(
                    ct.otp_challenges.c.id == row.id).values(
                    attempts=row.attempts + 1, used_micros=now if good else None))
            if good and row is not None:
                self._succeed(connection, keys)
                subject = f"borrower:{row.borrower_id}"
                token = self._session(connection, subject)
                self._commit(connection, subject, "auth.otp_login", target=subject,
                             after={"ip": ip})
        if not good:
            self._fail(keys, "auth.otp_failed", "phone", ip, "bad or expired code")
            raise Unauthenticated("invalid or expired code")
        return {"token": token, "expires_in": self.session_seconds}

    # -- personal data -------------------------------------------------------------
    def set_pii(self, borrower_id: int, fields: dict[str, str], actor: Principal | str,
                reason: str | None = None) -> None:
        """Record a borrower's personal data, encrypted (needs ``pii.write`` for principals)."""
        subject = actor if isinstance(actor, str) else actor.subject
        if not isinstance(actor, str):
            require(actor, "pii.write")
        unknown = set(fields) - set(PII_FIELDS)
        if unknown:
            raise Refused([Problem("pii.field", f"unknown fields {sorted(unknown)}")])
        with self.engine.begin() as connection:
            if connection.execute(select(t.borrowers.c.id).where(
                    t.borrowers.c.id == borrower_id)).first() is None:
                raise LookupError("borrower not found")
            sealed = self.keyring.seal(fields, f"borrower:{borrower_id}")
            values = {"kek_id": sealed.kek_id, "wrapped_key": sealed.wrapped_key,
                      "ciphertext": sealed.ciphertext, "updated_micros": self.now_micros(),
                      "phone_index": self.keyring.phone_index(fields["phone"])
                      if fields.get("phone") else None}
            done = connection.execute(update(ct.borrower_pii).where(
                ct.borrower_pii.c.borrower_id == borrower_id).values(values))
            if done.rowcount == 0:
                connection.execute(insert(ct.borrower_pii).values(borrower_id=borrower_id,
                                                                   **values))
            self._commit(connection, subject, "pii.write", target=f"borrower:{borrower_id}",
                         after=mask_pii(dict(fields)), reason=reason)

    def borrower(self, borrower_id: int, principal: Principal, reason: str | None = None
                 ) -> dict[str, Any]:
        """A borrower record; personal data masked unless ``pii.read`` (unmasked reads audited)."""
        own = principal.borrower_id == borrower_id
        if not (principal.can("borrowers.read") or own):
            raise LookupError("borrower not found")
        with self.engine.connect() as connection:
            row = connection.execute(select(t.borrowers).where(
                t.borrowers.c.id == borrower_id)).first()
            pii = connection.execute(select(ct.borrower_pii).where(
                ct.borrower_pii.c.borrower_id == borrower_id)).first()
        if row is None:
            raise LookupError("borrower not found")
        fields = {} if pii is None else self.keyring.open(
            Sealed(pii.kek_id, bytes(pii.wrapped_key), bytes(pii.ciphertext)),
            f"borrower:{borrower_id}")
        unmasked = principal.can("pii.read") or own
        if unmasked and fields:
            with self.engine.begin() as connection:
                self._commit(connection, principal.subject, "pii.read",
                             target=f"borrower:{borrower_id}",
                             after={"fields": sorted(fields)}, reason=reason)
        shown = dict(fields) if unmasked else mask_pii(dict(fields))
        return {"borrower_id": row.id, "external_ref": row.external_ref, "region": row.region,
                "personal_data": shown, "masked": not unmasked}

    def rotate_keys(self, actor: str = "cli") -> int:
        """Re-wrap every data key (and phone index) under the current master key."""
        count = 0
        with self.engine.begin() as connection:
            rows = connection.execute(select(ct.borrower_pii)).all()
            for row in rows:
                sealed = Sealed(row.kek_id, bytes(row.wrapped_key), bytes(row.ciphertext))
                if row.kek_id == self.keyring.current:
                    continue
                fields = self.keyring.open(sealed, f"borrower:{row.borrower_id}")
                fresh = self.keyring.rewrap(sealed)
                connection.execute(update(ct.borrower_pii).where(
                    ct.borrower_pii.c.borrower_id == row.borrower_id).values(
                    kek_id=fresh.kek_id, wrapped_key=fresh.wrapped_key,
                    phone_index=self.keyring.phone_index(fields["phone"])
                    if fields.get("phone") else None))
                count += 1
            self._commit(connection, actor, "pii.rotate", after={"rewrapped": count,
                                                                 "kek": self.keyring.current})
        return count

    # -- maker-checker -------------------------------------------------------------
    def propose(self, principal: Principal, kind: str, target: str, payload: dict[str, Any],
                reason: str) -> dict[str, Any]:
        """A maker asks for a sensitive change; nothing changes until another person approves."""
        require(principal, "control.propose")
        if kind not in self.actions:
            raise Refused([Problem("control.kind_unknown", f"unknown action {kind!r}; known: "
                                   f"{', '.join(sorted(self.actions))}", field="kind")])
        if not reason.strip():
            raise Refused([Problem("control.reason", "a reason is required", field="reason")])
        with self.engine.begin() as connection:
            action_id = int(connection.execute(insert(ct.pending_actions).values(
                kind=kind, target=target, payload=canonical_json(payload),
                maker=principal.subject, reason=reason, status=ActionStatus.PENDING.value,
                created_micros=self.now_micros())).inserted_primary_key[0])  # type: ignore[index]
            action = self._load(connection, action_id)
            preview = self._describe(connection, action)
            self._commit(connection, principal.subject, "control.proposed",
                         target=f"action:{action_id}",
                         after={"kind": kind, "target": target, "payload": payload,
                                "preview": preview}, reason=reason)
        return self.show(action_id, principal)

    def _describe(self, connection: Connection, action: PendingAction) -> dict[str, Any]:
        handler = self.actions[action.kind].describe
        return handler(connection, action) if handler else {"payload": dict(action.payload)}

    @staticmethod
    def _load(connection: Connection, action_id: int, lock: bool = False) -> PendingAction:
        query = select(ct.pending_actions).where(ct.pending_actions.c.id == action_id)
        if lock and connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = connection.execute(query).first()
        if row is None:
            raise LookupError("action not found")
        return PendingAction(row.id, row.kind, row.target, json.loads(row.payload), row.maker,
                             row.reason, ActionStatus(row.status), row.checker,
                             {"created": row.created_micros, "decided": row.decided_micros,
                              "decision_reason": row.decision_reason,
                              "result": None if row.result is None else json.loads(row.result)})

    def show(self, action_id: int, principal: Principal) -> dict[str, Any]:
        """A pending or decided action with what it will change (or changed)."""
        if not (principal.can("control.read") or principal.can("control.propose")):
            raise Forbidden("this needs 'control.read'")
        with self.engine.connect() as connection:
            action = self._load(connection, action_id)
            if not principal.can("control.read") and action.maker != principal.subject:
                raise LookupError("action not found")
            preview = self._describe(connection, action) \
                if action.status is ActionStatus.PENDING and action.kind in self.actions else None
        return _action_document(action, preview, self.actions.get(action.kind))

    def list_actions(self, principal: Principal, status: str | None = "pending"
                     ) -> list[dict[str, Any]]:
        """Actions (pending by default), oldest first."""
        require(principal, "control.read")
        query = select(ct.pending_actions.c.id).order_by(ct.pending_actions.c.id)
        if status:
            query = query.where(ct.pending_actions.c.status == status)
        with self.engine.connect() as connection:
            ids = list(connection.execute(query.limit(500)).scalars())
        return [self.show(i, principal) for i in ids]

    def decide(self, principal: Principal, action_id: int, approve: bool, reason: str = ""
               ) -> dict[str, Any]:
        """Approve (apply atomically through the handler) or reject a pending action."""
        with self.engine.begin() as connection:
            action = self._load(connection, action_id, lock=True)
            registered = self.actions.get(action.kind)
            if registered is None:
                raise Refused([Problem("control.kind_unknown", f"no handler for {action.kind!r}")])
            problems = decision_problems(action, principal.subject, principal.permissions,
                                         registered.permission)
            if problems:
                self._commit(connection, principal.subject, "control.refused_decision",
                             target=f"action:{action_id}",
                             after={"problems": [p.as_dict() for p in problems]})
        if problems:
            raise Forbidden("; ".join(p.message for p in problems))
        with self.engine.begin() as connection:
            action = self._load(connection, action_id, lock=True)
            if action.status is not ActionStatus.PENDING:
                raise Refused([Problem("control.not_pending", "decided meanwhile")])
            result = registered.apply(connection, action, principal.subject) if approve else {}
            status = ActionStatus.APPROVED if approve else ActionStatus.REJECTED
            connection.execute(update(ct.pending_actions).where(
                ct.pending_actions.c.id == action_id).values(
                status=status.value, checker=principal.subject, decided_micros=self.now_micros(),
                decision_reason=reason, result=canonical_json(result) if approve else None))
            self._commit(connection, principal.subject, f"control.{status.value}",
                         target=f"action:{action_id}", reason=reason or None,
                         before={"status": "pending"},
                         after={"kind": action.kind, "target": action.target,
                                "maker": action.maker, "result": result})
        return self.show(action_id, principal)

    # -- audit ---------------------------------------------------------------------
    def audit_report(self, start: date, end: date) -> dict[str, Any]:
        """The internal auditor's report (see ``lendsafe.services.audit.report``)."""
        return audit_service.report(self.engine, start, end, conflicts=self.conflicts)


def _code_hash(index: str, code: str) -> str:
    return hashlib.sha256(f"{index}|{code}".encode()).hexdigest()


def _action_document(action: PendingAction, preview: dict[str, Any] | None,
                     registered: SensitiveAction | None) -> dict[str, Any]:
    return {
        "id": action.id, "kind": action.kind, "target": action.target,
        "payload": dict(action.payload), "maker": action.maker, "reason": action.reason,
        "status": action.status.value, "checker": action.checker,
        "approval_permission": None if registered is None else registered.permission,
        "will_change": preview, **{k: v for k, v in action.extra.items() if k != "created"},
    }


def build_security(container: Any, channel: ChannelAdapter | None = None) -> Security:
    """Wire the control services for a container (keys from settings)."""
    from lendsafe.adapters.security.tokens import load_or_create_key
    settings = container.settings
    keyring = KeyRing.parse(settings.master_keys) if settings.master_keys else \
        KeyRing.development(settings.data_dir / "keys" / "dev-master-keys")
    if channel is None:
        channel = _default_channel(settings)
    security = Security(
        engine=container.engine, roles=role_catalogue(), audit=container.audit,
        ledger=container.ledger, keyring=keyring,
        tokens=TokenSigner(load_or_create_key(settings.token_key_file)), channel=channel,
        clock=container.lending.clock, session_seconds=settings.session_minutes * 60)
    register_builtin_actions(security, container.lending)
    for action in _REGISTRY.values():
        security.register_sensitive_action(action.kind, action.apply, action.permission,
                                           action.describe)
    return security


def _default_channel(settings: Any) -> ChannelAdapter:
    from lendsafe.adapters.channels.file_channel import FileChannel

    return FileChannel(settings.data_dir / "outbox" / "otp.jsonl")


# --------------------------------------------------------------------------- built-in actions


def _target_id(target: str, prefix: str) -> int:
    kind, _, value = target.partition(":")
    if kind != prefix or not value.isdigit():
        raise Refused([Problem("control.target", f"target must look like {prefix}:ID",
                               field="target")])
    return int(value)


def _apply_role_grant(connection: Connection, action: PendingAction, checker: str
                      ) -> dict[str, Any]:
    username = action.target.removeprefix("user:")
    role = str(action.payload.get("role", ""))
    catalogue = role_catalogue()
    catalogue.role(role)
    user_id = connection.execute(select(ct.users.c.id).where(
        ct.users.c.username == username)).scalar()
    if user_id is None:
        raise Refused([Problem("control.user_unknown", f"no user {username!r}")])
    held = list(connection.execute(select(ct.user_roles.c.role).where(
        ct.user_roles.c.user_id == user_id)).scalars())
    if role in held:
        return {"granted": role, "already_held": True}
    problems = catalogue.conflicts([*held, role])
    if problems:
        raise Refused(problems)
    connection.execute(insert(ct.user_roles).values(
        user_id=user_id, role=role, granted_by=f"{action.maker} + {checker}",
        granted_micros=int(action.extra.get("created") or 0)))
    return {"granted": role, "user": username, "roles": sorted([*held, role])}


def _describe_role_grant(connection: Connection, action: PendingAction) -> dict[str, Any]:
    username = action.target.removeprefix("user:")
    user_id = connection.execute(select(ct.users.c.id).where(
        ct.users.c.username == username)).scalar()
    held = [] if user_id is None else sorted(connection.execute(select(
        ct.user_roles.c.role).where(ct.user_roles.c.user_id == user_id)).scalars())
    after = sorted({*held, str(action.payload.get("role"))})
    return {"before": {"roles": held}, "after": {"roles": after},
            "conflicts": [p.as_dict() for p in role_catalogue().conflicts(after)]}


def _lending_action(prefix: str, call: Callable[[int, str, Connection], dict[str, Any]]
                    ) -> ApplyHandler:
    """An apply handler running a lending use case on ``prefix:ID`` in the approval's
    transaction, with maker and checker as the actor."""
    def apply(connection: Connection, action: PendingAction, checker: str) -> dict[str, Any]:
        target = _target_id(action.target, prefix)
        try:
            return call(target, f"{action.maker} + {checker}", connection)
        except NotFound:
            raise LookupError(f"{prefix} not found") from None

    return apply


def _apply_payment_reversal(lending: LendingService) -> ApplyHandler:
    return _lending_action("payment", lambda payment_id, actor, connection: (
        lending.reverse_payment(payment_id, actor=actor, connection=connection)))


def _describe_payment_reversal(lending: LendingService) -> DescribeHandler:
    def describe(connection: Connection, action: PendingAction) -> dict[str, Any]:
        payment_id = _target_id(action.target, "payment")
        try:
            return reversal_document(lending.plan_reversal(connection, payment_id))
        except NotFound:
            return {"error": "payment not found"}
        except Refused as refused:
            return {"refused": [p.as_dict() for p in refused.problems]}

    return describe


def _apply_write_off(lending: LendingService) -> ApplyHandler:
    return _lending_action("loan", lambda loan_id, actor, connection: (
        lending.write_off(loan_id, actor=actor, connection=connection)))


_WRITE_OFF = ("principal_outstanding_minor", "interest_receivable_minor", "fee_receivable_minor")


def _describe_write_off(connection: Connection, action: PendingAction) -> dict[str, Any]:
    loan_id = _target_id(action.target, "loan")
    loan = connection.execute(select(t.loans).where(t.loans.c.id == loan_id)).first()
    if loan is None:
        return {"error": "loan not found"}
    penalty = int(loan.penalty_recognized_minor - loan.penalty_paid_minor)
    return {"before": {"status": loan.status, **{c: getattr(loan, c) for c in _WRITE_OFF},
                       "penalty_receivable_minor": penalty},
            "after": {"status": "charged_off", **{c: 0 for c in _WRITE_OFF},
                      "penalty_receivable_minor": 0}}


def _apply_catalogue_change(change: Callable[[Connection, str, dict[str, Any], str],
                                              dict[str, Any]],
                            prefix: str) -> ApplyHandler:
    """A product or jurisdiction change: ``payload.changes`` applied to the target named
    ``prefix``+id by ``change`` (a lending use case) in the approval's transaction."""
    def apply(connection: Connection, action: PendingAction, checker: str) -> dict[str, Any]:
        changes = action.payload.get("changes", {})
        if not isinstance(changes, dict):
            raise Refused([Problem("control.payload", "payload.changes must be an object")])
        try:
            return change(connection, action.target.removeprefix(prefix), dict(changes),
                          f"{action.maker} + {checker}")
        except NotFound:
            raise LookupError(f"{prefix.rstrip(':')} not found") from None

    return apply


def register_builtin_actions(security: Security, lending: LendingService) -> None:
    """Role grants, payment reversals, write-off overrides, product and jurisdiction changes;
    all but the first are lending use cases (``lending``), applied in the approval's transaction."""
    security.register_sensitive_action("role.grant", _apply_role_grant, "approve.role.grant",
                                       _describe_role_grant)
    security.register_sensitive_action("payment.reversal", _apply_payment_reversal(lending),
                                       "approve.payment.reversal",
                                       _describe_payment_reversal(lending))
    security.register_sensitive_action("loan.write_off", _apply_write_off(lending),
                                       "approve.write_off", _describe_write_off)
    security.register_sensitive_action(
        "product.change", _apply_catalogue_change(lending.change_product, "product:"),
        "approve.product.change")
    security.register_sensitive_action(
        "jurisdiction.change",
        _apply_catalogue_change(lending.change_jurisdiction, "jurisdiction:"),
        "approve.jurisdiction.change")


__all__ = ["KeyRingError", "Security", "SensitiveAction", "build_security",
           "register_sensitive_action"]
