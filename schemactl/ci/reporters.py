"""Reporters of `schemactl check`: pure functions from the check's JSON object to text.

- :func:`sarif`: SARIF 2.1.0 (GitHub code scanning, GitLab, IDEs), with rule metadata
  and locations in the definition (or migration) files;
- :func:`markdown`: a pull-request comment / job summary a reviewer can read;
- :func:`github`: GitHub Actions workflow commands (``::error file=...``) that annotate
  the diff;
- :func:`junit`: JUnit XML, one test case per rule run (and one for the round trip).

They read only the dict (``CheckResult.to_json()``): no I/O, no repository.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_URI = "https://pypi.org/project/schemactl/"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("schemactl")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0"


def _where(v: dict[str, Any]) -> str:
    return ".".join(x for x in (v.get("table"), v.get("column")) if x) or "-"


def _short(sha: str | None) -> str:
    return (sha or "")[:10]


def _rule_meta(data: dict[str, Any], code: str) -> dict[str, str]:
    return (data.get("rules") or {}).get(code) or {}


# -- SARIF ------------------------------------------------------------------------------


def sarif(data: dict[str, Any]) -> str:
    """SARIF 2.1.0: one run, the rules that reported something, one result per violation."""
    violations = data.get("violations") or []
    codes = sorted({v["rule"] for v in violations})
    rules = []
    for code in codes:
        meta = _rule_meta(data, code)
        name = meta.get("name") or next((v.get("name") for v in violations
                                         if v["rule"] == code), code)
        summary = meta.get("summary") or name
        hint = meta.get("hint") or ""
        rule: dict[str, Any] = {
            "id": code,
            "name": name,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": f"{code} {name}: {summary}"},
            "help": {"text": hint or summary,
                     "markdown": f"**{code} {name}**: {summary}\n\n{hint}".strip()},
            "defaultConfiguration": {"level": _level(meta.get("severity", "error"))},
            "properties": {"tags": ["schema", "postgresql"]},
        }
        if meta.get("help_uri"):
            rule["helpUri"] = meta["help_uri"]
        rules.append(rule)
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for v in violations:
        result: dict[str, Any] = {
            "ruleId": v["rule"],
            "ruleIndex": index[v["rule"]],
            "level": _level(v.get("severity", "error")),
            "message": {"text": v.get("message", "") + (f" Hint: {v['hint']}"
                                                       if v.get("hint") else "")},
        }
        if v.get("source"):
            physical: dict[str, Any] = {"artifactLocation": {"uri": v["source"]}}
            physical["region"] = {"startLine": int(v.get("line") or 1)}
            result["locations"] = [{"physicalLocation": physical}]
        if v.get("table"):
            result.setdefault("locations", [{}])[0]["logicalLocations"] = [
                {"name": _where(v), "kind": "member" if v.get("column") else "type"}]
        results.append(result)
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "schemactl", "version": _version(),
                            "informationUri": TOOL_URI, "rules": rules}},
        "results": results,
        "invocations": [{"executionSuccessful": True,
                         "commandLine": f"schemactl check --base {data.get('base', '')}"}],
    }
    if data.get("head"):
        run["properties"] = {"base": data.get("base"), "mergeBase": data.get("merge_base"),
                             "head": data["head"]}
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2) + "\n"


def _level(severity: str) -> str:
    return {"error": "error", "warning": "warning"}.get(severity, "note")


# -- Markdown ---------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def markdown(data: dict[str, Any]) -> str:
    """A PR comment: verdict, summary, a table of violations with hints, the SQL plan."""
    violations = data.get("violations") or []
    errors = [v for v in violations if v.get("severity") == "error"]
    warnings = [v for v in violations if v.get("severity") != "error"]
    rt = data.get("round_trip")
    verdict = "✅ passed" if data.get("ok") else "❌ failed"
    lines = [f"## schemactl check: {verdict}", ""]
    tables = data.get("changed_tables") or []
    added = data.get("migrations_added") or []
    lines.append(f"Base `{data.get('base', '')}` (merge base `{_short(data.get('merge_base'))}`)"
                 f" → head `{_short(data.get('head'))}` · {len(tables)} table(s) changed"
                 f"{': ' + ', '.join(f'`{t}`' for t in tables) if tables else ''}"
                 f" · {len(added)} migration(s) added · {len(errors)} error(s),"
                 f" {len(warnings)} warning(s)")
    lines.append("")
    if violations:
        lines += ["| | Rule | Where | Message | Hint |", "| --- | --- | --- | --- | --- |"]
        for v in violations:
            icon = "❌" if v.get("severity") == "error" else "⚠️"
            where = _where(v)
            if v.get("source"):
                loc = v["source"] + (f":{v['line']}" if v.get("line") else "")
                where = f"{where} (`{loc}`)" if where != "-" else f"`{loc}`"
            lines.append(f"| {icon} | {_cell(v['rule'])} {_cell(v.get('name'))} | "
                         f"{_cell(where)} | {_cell(v.get('message'))} | {_cell(v.get('hint'))} |")
        lines.append("")
    else:
        lines += ["No violations.", ""]
    for w in data.get("waived") or []:
        lines.append(f"- waived {w.get('rule')} {_where(w)}: {_cell(w.get('reason'))}")
    if data.get("waived"):
        lines.append("")
    if rt is not None:
        if rt.get("ok"):
            lines += ["Round trip (upgrade → downgrade → upgrade): ✅ passed", ""]
        else:
            failed = rt.get("failed") or {}
            lines += [f"Round trip: ❌ failed at **{failed.get('step', '?')}**: "
                      f"{_cell(failed.get('message'))}", ""]
            if failed.get("sql"):
                lines += ["```sql", str(failed["sql"]).rstrip(), "```", ""]
    if added:
        lines += ["Migrations added: " + ", ".join(f"`{m}`" for m in added), ""]
    for rb in data.get("rollbacks") or []:
        lines += [f"Rollback `{_short(rb.get('commit'))}` recorded by schemactl on this branch "
                  "removed " + ", ".join(f"`{m}`" for m in rb.get("removed") or [])
                  + ": databases that applied it must be rolled back too", ""]
    if data.get("diagram"):
        lines += ["<details open><summary>Changed tables</summary>", "", "```mermaid",
                  str(data["diagram"]).rstrip(), "```", "", "</details>", ""]
    sql = (data.get("plan_sql") or "").strip()
    if sql:
        lines += ["<details><summary>SQL plan</summary>", "", "```sql", sql, "```", "",
                  "</details>", ""]
    return "\n".join(lines)


# -- GitHub workflow commands -------------------------------------------------------------


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def github(data: dict[str, Any]) -> str:
    """``::error file=F,line=N,title=SC102 no-drop-column::message`` lines, then a summary."""
    out = []
    for v in data.get("violations") or []:
        level = "error" if v.get("severity") == "error" else "warning"
        props = []
        if v.get("source"):
            props.append(f"file={_gh_prop(v['source'])}")
            props.append(f"line={int(v.get('line') or 1)}")
        props.append(f"title={_gh_prop(v['rule'] + ' ' + (v.get('name') or ''))}")
        message = v.get("message", "") + (f"\nhint: {v['hint']}" if v.get("hint") else "")
        out.append(f"::{level} {','.join(props)}::{_gh_data(message)}")
    rt = data.get("round_trip")
    if rt is not None and not rt.get("ok"):
        failed = rt.get("failed") or {}
        msg = f"round trip failed at {failed.get('step')}: {failed.get('message')}"
        if failed.get("sql"):
            msg += f"\n{failed['sql']}"
        out.append(f"::error title=schemactl round trip::{_gh_data(msg)}")
    errors = sum(1 for v in data.get("violations") or [] if v.get("severity") == "error")
    out.append(f"schemactl check: {'passed' if data.get('ok') else 'failed'} "
               f"({errors} error(s), {len(data.get('violations') or []) - errors} warning(s))")
    return "\n".join(out) + "\n"


# -- JUnit ------------------------------------------------------------------------------


def junit(data: dict[str, Any]) -> str:
    """JUnit XML: one test case per rule run (a failure per error), plus the round trip."""
    violations = data.get("violations") or []
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for v in violations:
        by_rule.setdefault(v["rule"], []).append(v)
    codes = sorted(set(data.get("rules_run") or []) | set(by_rule))
    cases = []
    failures = 0
    for code in codes:
        found = by_rule.get(code, [])
        name = _rule_meta(data, code).get("name") or (found[0].get("name") if found else "")
        errors = [v for v in found if v.get("severity") == "error"]
        body = ""
        if errors:
            failures += 1
            text = "\n".join(f"{_where(v)}: {v.get('message')} (hint: {v.get('hint')})"
                             for v in errors)
            body += (f"<failure message={quoteattr(errors[0].get('message', ''))} "
                     f"type={quoteattr(code)}>{escape(text)}</failure>")
        warnings = [v for v in found if v.get("severity") != "error"]
        if warnings:
            body += "<system-out>" + escape("\n".join(
                f"warning {_where(v)}: {v.get('message')}" for v in warnings)) + "</system-out>"
        cases.append(f'    <testcase classname="schemactl.ci.check" '
                     f'name={quoteattr(f"{code} {name}".strip())}>{body}</testcase>')
    rt = data.get("round_trip")
    if rt is not None:
        body = ""
        if not rt.get("ok"):
            failures += 1
            failed = rt.get("failed") or {}
            body = (f"<failure message={quoteattr(str(failed.get('message', '')))} "
                    f'type="round-trip">{escape(str(failed.get("sql") or ""))}</failure>')
        cases.append(f'    <testcase classname="schemactl.ci.check" name="round trip">{body}'
                     "</testcase>")
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name="schemactl check" tests="{len(cases)}" failures="{failures}">\n'
            f'  <testsuite name="schemactl check" tests="{len(cases)}" failures="{failures}" '
            f'errors="0" skipped="0">')
    return "\n".join([head, *cases, "  </testsuite>", "</testsuites>"]) + "\n"


REPORTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "sarif": sarif, "markdown": markdown, "github": github, "junit": junit,
    "json": lambda data: json.dumps(data, indent=2, default=str) + "\n",
}


def render(fmt: str, data: dict[str, Any]) -> str:
    """The check result ``data`` in format ``fmt`` (sarif, markdown, github, junit, json).

    Raises:
        ValueError: an unknown format.
    """
    try:
        return REPORTERS[fmt](data)
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}") from None
