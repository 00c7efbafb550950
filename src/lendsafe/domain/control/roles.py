"""Roles, permissions and segregation-of-duties rules, read from data (``data/roles.toml``).

Code asks for *permissions*, never for role names. A conflict rule names permissions that
one user may never hold together (across all their roles); :meth:`RoleCatalogue.conflicts`
returns the broken rules as :class:`~lendsafe.domain.problems.Problem` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lendsafe.domain.problems import Problem, Refused

__all__ = ["ConflictRule", "Role", "RoleCatalogue", "parse_roles"]


@dataclass(frozen=True)
class Role:
    """A named set of permissions."""

    name: str
    permissions: frozenset[str]
    staff: bool
    description: str = ""


@dataclass(frozen=True)
class ConflictRule:
    """Permissions that one user may never hold all together."""

    name: str
    permissions: frozenset[str]
    reason: str


@dataclass(frozen=True)
class RoleCatalogue:
    """Every role, permission and conflict rule."""

    roles: Mapping[str, Role]
    permissions: Mapping[str, str]
    rules: tuple[ConflictRule, ...]

    def role(self, name: str) -> Role:
        """The role called ``name``; refused with a problem when unknown."""
        found = self.roles.get(name)
        if found is None:
            raise Refused([Problem("control.role_unknown", f"unknown role {name!r}; roles: "
                                   f"{', '.join(sorted(self.roles))}", field="role")])
        return found

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        """The union of the permissions of ``roles`` (unknown roles give none)."""
        out: set[str] = set()
        for name in roles:
            role = self.roles.get(name)
            if role is not None:
                out |= role.permissions
        return frozenset(out)

    def is_staff(self, roles: Iterable[str]) -> bool:
        """True when any of ``roles`` is a staff role."""
        return any(self.roles[r].staff for r in roles if r in self.roles)

    def conflicts(self, roles: Iterable[str]) -> list[Problem]:
        """The segregation-of-duties rules that holding ``roles`` together would break."""
        names = sorted(set(roles))
        held = self.permissions_of(names)
        return [
            Problem("control.segregation", f"roles {', '.join(names)} together break "
                    f"{rule.name!r}: {rule.reason}", field="role",
                    figures={"rule": rule.name, "permissions": ", ".join(sorted(rule.permissions))})
            for rule in self.rules if rule.permissions <= held
        ]


def parse_roles(data: Mapping[str, Any]) -> RoleCatalogue:
    """Build and check a catalogue from parsed TOML; raises ``Refused`` listing every problem."""
    permissions = {str(k): str(v) for k, v in dict(data.get("permissions", {})).items()}
    problems: list[Problem] = []
    roles: dict[str, Role] = {}
    for name, raw in dict(data.get("roles", {})).items():
        granted = frozenset(str(p) for p in raw.get("permissions", []))
        for unknown in sorted(granted - permissions.keys()):
            problems.append(Problem("control.permission_unknown",
                                    f"role {name!r} grants unknown permission {unknown!r}"))
        roles[name] = Role(name, granted, bool(raw.get("staff", False)),
                           str(raw.get("description", "")))
    rules = tuple(
        ConflictRule(str(r["name"]), frozenset(str(p) for p in r["permissions"]),
                     str(r.get("reason", "")))
        for r in data.get("conflicts", [])
    )
    for rule in rules:
        if len(rule.permissions) < 2 or not rule.permissions <= permissions.keys():
            problems.append(Problem("control.rule_invalid", f"conflict rule {rule.name!r} "
                                    "needs two or more known permissions"))
    catalogue = RoleCatalogue(roles, permissions, rules)
    for role in roles.values():
        problems += catalogue.conflicts([role.name])
    if problems:
        raise Refused(problems)
    return catalogue
