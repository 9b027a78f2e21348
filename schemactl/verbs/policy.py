"""Who may change the database: the ``[policy]`` of schemactl.toml, enforced in the engine.

``agent_apply = "safe"`` (the default) lets an agent apply a change that passes every
safety rule with no waiver; ``"never"`` leaves applying and rolling back to humans and
CI. The checks live here; the engine API hands them to the pipeline as a guard
(`guard_for`), so the CLI with ``--actor agent:x``, the Python API and the MCP server all
obey the same policy. A refusal is a :class:`PolicyRefusal` (code ``policy``, exit 1),
raised before anything is changed: no backup, no audit row, no commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from schemactl.errors import PolicyError
from schemactl.model.actor import is_agent
from schemactl.model.repo import SchemaRepo

if TYPE_CHECKING:
    from schemactl.pipeline.operation import Guard, Operation, Plan

SAFE = "safe"
NEVER = "never"


class PolicyRefusal(PolicyError):
    """An agent was refused by the policy; carries the findings that made the change unsafe."""

    def __init__(self, message: str, *, hint: str,
                 violations: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(message, hint=hint)
        # Read by the CLI's error handler and the MCP layer: shown next to the error.
        self.violations = list(violations)


def require_agent_may_change(repo: SchemaRepo, actor: str, action: str = "apply") -> None:
    """Refuse an agent at once when the policy is ``agent_apply = "never"``.

    Args:
        repo: the schema repository (its schemactl.toml holds the policy).
        actor: who asks.
        action: "apply" or "rollback", for the message.

    Raises:
        PolicyRefusal: the actor is an agent and agents may not change the database.
    """
    if not is_agent(actor) or repo.config.agent_apply != NEVER:
        return
    raise PolicyRefusal(
        f"{actor} may not {action}: schemactl.toml sets [policy] agent_apply = \"never\"",
        hint="nothing was changed; a human or CI runs `schemactl "
             f"{action}` (propose the change and ask for it to be applied)")


def refuse_agent_force(actor: str, what: str = "--force") -> None:
    """Agents never get ``--force`` (nor waivers).

    Raises:
        PolicyRefusal: the actor is an agent.
    """
    if is_agent(actor):
        raise PolicyRefusal(f"{actor} may not use {what}: agents never force a change",
                            hint="nothing was changed; ask a human to run it")


def unsafe_findings(repo: SchemaRepo, db_revision: str | None) -> list[dict[str, Any]]:
    """Error findings, with waivers ignored, of the change from ``db_revision`` to git HEAD.

    The database at ``db_revision`` holds the definitions of the commit that added that
    revision's migration; HEAD holds what applying would make. Definition rules and,
    as defence in depth, operation rules over the operations that change implies both
    run with ``allow_waivers=False``: a change that only passed thanks to a waiver is
    not safe for an agent.

    Returns:
        The violations (JSON objects) that make the change unsafe; empty when it is safe.
    """
    from schemactl.model.loading import changed_between, tables_at_rev
    from schemactl.pipeline import drift
    from schemactl.rules import validation

    # Indexed sets (the parse cache in a large repository): only the tables git says
    # changed, and what they reference, are read.
    current = drift.expected_tables(repo, db_revision)
    proposed = tables_at_rev(repo.root, "HEAD")
    changed = changed_between(repo.root, current, proposed)
    if not changed:
        return []
    config = repo.config
    report = validation.check_definitions(current, proposed, config, changed=changed,
                                          allow_waivers=False)
    found = [v.to_json() for v in report.errors]
    if not found and any(n in proposed for n in changed):
        from schemactl.codegen.planner import build_plan

        plan = build_plan(current, proposed, [n for n in changed if n in proposed])
        ops = validation.check_operations(plan.upgrade_ops, current, proposed, config,
                                          allow_waivers=False)
        found = [v.to_json() for v in ops.errors]
    return found


def guard_plan(repo: SchemaRepo, actor: str, plan: Plan) -> Plan:
    """Wrap an apply plan so that, for an agent, it refuses an unsafe change under the lock.

    The check runs where the pipeline decides what to do (under the apply lock, from the
    database's own revision), so what is checked is exactly what would be applied. With
    nothing pending the plan still says "nothing to do": a retried apply is a no-op.
    """
    if not is_agent(actor):
        return plan

    def guarded(current: str | None) -> Operation | None:
        op = plan(current)
        if op is None:
            return None
        require_agent_may_change(repo, actor, op.action)
        found = unsafe_findings(repo, current)
        if found:
            rules = ", ".join(sorted({str(v["rule"]) for v in found}))
            raise PolicyRefusal(
                f"{actor} may not {op.action} {', '.join(op.revisions)}: the change does not "
                f"pass every safety rule without waivers ({rules})",
                hint="nothing was changed; under agent_apply = \"safe\" an agent applies only "
                     "changes that pass every rule with no waiver: a human or CI applies this "
                     "one",
                violations=found)
        return op

    return guarded


def guard_for(repo: SchemaRepo, actor: str) -> Guard:
    """The pipeline guard that enforces this policy for ``actor`` (a no-op for humans and CI)."""
    from schemactl.pipeline.operation import Guard

    return Guard(refuse_early=lambda action: require_agent_may_change(repo, actor, action),
                 wrap=lambda plan: guard_plan(repo, actor, plan))
