"""Drift comparisons remembered by the catalog fingerprint of the database they were made on.

A drift check reflects the live schema and compares it with the definitions of one commit
(`schemactl.pipeline.drift`). The result is a function of two things only: that commit and
what the catalog says about the dynamic schema. The targets of a fleet are usually
identical, so 50 targets meant 100 reflections of the same schema. Here one catalog query
(:data:`_FINGERPRINT`) digests everything the comparison reads, and more: every relation,
column (type, nullability, default, identity, generated expression, collation, comment),
index (its whole definition and validity), constraint (its whole definition, deferrability,
validation), comments, the online changes under way, the server version and search_path.
Two databases with the same digest reflect identically, so the comparison made on the first
holds for the second; any difference in what the comparison reads changes the digest and
the second database gets its own full reflection. Drift is therefore caught exactly as
before: only a repeat of an answer already computed is skipped.

A result is remembered only when the digest taken after the reflection equals the one
taken before (nothing changed underneath), and never for definitions read from the work
tree (no commit names them).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

_FINGERPRINT = """
select md5(coalesce(string_agg(x, E'\\n' order by x), '')) from (
  select concat_ws(' ', 'v', current_setting('server_version_num'),
                   current_setting('search_path')) as x
  union all
  select concat_ws(' ', 'r', c.relname, c.relkind::text,
                   coalesce(array_to_string(c.reloptions, ','), ''),
                   coalesce(obj_description(c.oid, 'pg_class'), ''))
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = %(schema)s and c.relkind not in ('i', 'I')
  union all
  select concat_ws(' ', 'a', c.relname, a.attnum, a.attname,
                   format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   a.attidentity::text, a.attgenerated::text, a.attcollation,
                   coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                   coalesce(col_description(c.oid, a.attnum), ''))
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
   where n.nspname = %(schema)s and a.attnum > 0 and not a.attisdropped
     and c.relkind not in ('i', 'I')
  union all
  select concat_ws(' ', 'i', t.relname, pg_get_indexdef(i.indexrelid), i.indisvalid,
                   i.indisprimary, coalesce(obj_description(i.indexrelid, 'pg_class'), ''))
    from pg_index i
    join pg_class t on t.oid = i.indrelid
    join pg_namespace n on n.oid = t.relnamespace
   where n.nspname = %(schema)s
  union all
  select concat_ws(' ', 'c', t.relname, k.conname, k.contype::text,
                   pg_get_constraintdef(k.oid), k.condeferrable, k.condeferred,
                   k.convalidated, coalesce(obj_description(k.oid, 'pg_constraint'), ''))
    from pg_constraint k
    join pg_class t on t.oid = k.conrelid
    join pg_namespace n on n.oid = t.relnamespace
   where n.nspname = %(schema)s
) parts
"""

_ONLINE = ("select coalesce(string_agg(revision || ' ' || table_name || ' ' || column_name "
           "|| ' ' || step || ' ' || coalesce(shadow, ''), E'\\n' order by started_at), '') "
           "from schemactl_archive.online_progress where step <> 'done'")

_LIMIT = 64
_lock = threading.Lock()
_memo: OrderedDict[tuple[Any, ...], tuple[list[dict[str, Any]], list[str]]] = OrderedDict()


def fingerprint(execute: Any, schema: str) -> str:
    """The digest of ``schema``'s catalog; ``execute(sql, params)`` returns the first row."""
    digest = str(execute(_FINGERPRINT, {"schema": schema})[0])
    online = execute("select to_regclass('schemactl_archive.online_progress')", {})[0]
    if online is not None:
        digest += ":" + str(execute(_ONLINE, {})[0])
    return digest


def recall(key: tuple[Any, ...]) -> tuple[list[dict[str, Any]], list[str]] | None:
    """A remembered (differences, names_only), as a private copy; None when not known."""
    with _lock:
        found = _memo.get(key)
        if found is None:
            return None
        _memo.move_to_end(key)
        return copy.deepcopy(found[0]), list(found[1])


def remember(key: tuple[Any, ...], differences: list[dict[str, Any]],
             names_only: list[str]) -> None:
    with _lock:
        _memo[key] = (copy.deepcopy(differences), list(names_only))
        while len(_memo) > _LIMIT:
            _memo.popitem(last=False)


def clear() -> None:
    with _lock:
        _memo.clear()
