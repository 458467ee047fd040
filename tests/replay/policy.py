"""Build a filter policy (docs/policy-draft.md) from the fixtures being replayed.

One provider per fixture `provider` value, preset `auto`, with the exact
request paths of its fixtures as endpoints. A path is listed once across all
providers and kinds: a policy that names the same path twice is ambiguous.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fixtures import Fixture

# Fixture `endpoint` -> policy endpoint kind. `introspect` and anything else
# are not policy targets and are left out.
ENDPOINT_KINDS = {
    "token": "token",
    "revoke": "revocation",
    "authorize": "authorization",
    "register": "registration",
}
NOT_TARGETS = frozenset({"introspect"})

# When one path is seen with several kinds, the first kind here wins.
PRIORITY = ("token", "revocation", "authorization", "registration")

# Order of the kinds inside a provider's `endpoints`, as in docs/policy-draft.md.
OUTPUT_ORDER = ("token", "revocation", "registration", "authorization")

# RFC 3986 section 3.3: path-abempty = *( "/" segment ), segment = *pchar,
# pchar = unreserved / pct-encoded / sub-delims / ":" / "@".
_PCHAR_PATH = re.compile(r"^(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+$")


@dataclass(frozen=True)
class Candidate:
    path: str
    kind: str
    provider: str
    file: str
    order: int


def path_problem(path: str) -> str | None:
    """Why `path` cannot be an exact policy path, or None when it can."""
    if not _PCHAR_PATH.match(path):
        return "has characters outside RFC 3986 pchar"
    if "*" in path.split("/"):
        # A lone `*` segment is the policy's one-segment wildcard, not an exact path.
        return "has a '*' segment, which the policy reads as a wildcard"
    return None


def provider_names(providers: list[str]) -> dict[str, str]:
    """A short, unique, log-friendly name for each provider label."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for label in providers:
        base = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "provider"
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names[label] = name
    return names


def generate_policy(fixtures: list[Fixture]) -> tuple[dict, list[str]]:
    """The policy document for `fixtures` (in the given order) and notes on what was left out."""
    notes: list[str] = []
    providers: list[str] = []
    candidates: list[Candidate] = []

    for order, fx in enumerate(fixtures):
        if fx.provider not in providers:
            providers.append(fx.provider)
        kind = ENDPOINT_KINDS.get(fx.endpoint)
        if kind is None:
            if fx.endpoint not in NOT_TARGETS:
                notes.append(f"{fx.file}: endpoint kind {fx.endpoint!r} is unknown; not listed")
            continue
        path = fx.url_path
        problem = path_problem(path)
        if problem:
            notes.append(f"{fx.file}: path {path!r} {problem}; not listed")
            continue
        candidates.append(Candidate(path, kind, fx.provider, fx.file, order))

    by_path: dict[str, list[Candidate]] = {}
    for cand in candidates:
        by_path.setdefault(cand.path, []).append(cand)

    endpoints: dict[str, dict[str, list[str]]] = {p: {} for p in providers}
    for path, group in by_path.items():
        winner = min(group, key=lambda c: (PRIORITY.index(c.kind), c.order))
        endpoints[winner.provider].setdefault(winner.kind, []).append(path)

        lost_kinds = sorted({c.kind for c in group} - {winner.kind}, key=PRIORITY.index)
        if lost_kinds:
            dropped = ", ".join(
                f"{c.kind} ({c.file})" for c in group if c.kind in lost_kinds
            )
            notes.append(
                f"path {path} is both {winner.kind} ({winner.file}) and {dropped}; "
                f"kept {winner.kind} under {winner.provider!r}"
            )
        others = sorted({c.provider for c in group if c.kind == winner.kind} - {winner.provider})
        if others:
            notes.append(
                f"path {path} ({winner.kind}) is used by {len(others) + 1} providers; "
                f"listed once, under {winner.provider!r} (also: {', '.join(others)})"
            )

    names = provider_names(providers)
    doc_providers = []
    for label in providers:
        kinds = endpoints[label]
        if not kinds:
            notes.append(f"provider {label!r} has no listable endpoint left; not listed")
            continue
        doc_providers.append(
            {
                "name": names[label],
                "preset": "auto",
                "endpoints": {k: kinds[k] for k in OUTPUT_ORDER if k in kinds},
            }
        )
    return {"version": 1, "providers": doc_providers}, notes


def policy_text(policy: dict) -> str:
    """The policy as the plugin configuration string (JSON, which YAML 1.2 also reads)."""
    return json.dumps(policy, indent=2) + "\n"
