"""Helpers for the operation-level rules: types and defaults read from Alembic ops."""

from __future__ import annotations

from collections.abc import Iterator

from .core_tables import sa_type_name

TYPE_CHECKING = False  # typing is for the type checker: a cold validate never imports it
if TYPE_CHECKING:
    from typing import Any

    from .ops_context import OpItem, OpsContext


def altered_types(ctx: OpsContext) -> Iterator[tuple[OpItem, str, str]]:
    """(item, old type, new type) for every AlterColumnOp that changes a column's type.

    The old type comes from the op (``existing_type``) or else from the current
    definitions; "?" when neither knows it (treated as narrowing: unknown is unsafe).
    """
    for item in ctx.of_kind("AlterColumnOp"):
        op = item.op
        if op.modify_type is None:
            continue
        new = sa_type_name(op.modify_type)
        old = "?"
        if op.existing_type is not None:
            old = sa_type_name(op.existing_type)
        elif item.table is not None and item.table in ctx.current:
            col = ctx.current[item.table].column(op.column_name)
            if col is not None:
                old = col.type
        yield item, old, new


def server_default_text(default: Any) -> str | None:
    """The SQL text of a server default (``text("now()")``, a string, or None)."""
    if default is None or default is False:
        return None
    arg = getattr(default, "arg", default)
    text = getattr(arg, "text", arg)
    return str(text)
