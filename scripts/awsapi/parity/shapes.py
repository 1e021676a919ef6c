"""The shape of an AWS response (its keys and value types, recursively; never the values,
since ids, timestamps, receipt handles and URLs differ between two servers) and the
differences between the shapes two servers gave for the same scenario."""

import datetime


def type_name(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        # botocore parses numbers by the service model; int and float are both a number.
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "blob"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


def flatten(value, path="", out=None):
    """`{"Messages[].Attributes.SentTimestamp": "string", ...}`: every path of `value` with
    its type. A list's elements share one path (`[]`), so the shape does not depend on how
    many elements came back, only on what kinds did."""
    out = {} if out is None else out
    out[path or "."] = type_name(value)
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for item in value:
            flatten(item, f"{path}[]", out)
    return out


def record(step, outcome):
    """What the comparison keeps of one step: the response's shape and HTTP status, or the
    error's code and HTTP status."""
    if "error" in outcome:
        return {"step": step, "error": outcome["error"], "status": outcome["status"]}
    return {"step": step, "status": outcome["status"], "shape": flatten(outcome["response"])}


def differences(moto, serve):
    """Each way the two runs' records differ, as `{"step", "path", "moto", "serve"}` (a side
    that lacks the path or the step says `null`). `path` is `!error` for an error code,
    `!status` for the HTTP status, and a response path otherwise."""
    by_step = {}
    for side, records in (("moto", moto), ("serve", serve)):
        for r in records:
            by_step.setdefault(r["step"], {})[side] = r
    out = []
    for step, sides in by_step.items():
        m, s = sides.get("moto"), sides.get("serve")
        if m is None or s is None:
            out.append({"step": step, "path": "!ran", "moto": m is not None, "serve": s is not None})
            continue
        if m.get("error") != s.get("error"):
            out.append({"step": step, "path": "!error", "moto": m.get("error"), "serve": s.get("error")})
        if m["status"] != s["status"]:
            out.append({"step": step, "path": "!status", "moto": m["status"], "serve": s["status"]})
        ms, ss = m.get("shape", {}), s.get("shape", {})
        if "error" in m or "error" in s:
            continue
        missing = []  # a path one side lacks: its children are not listed again
        for path in sorted(set(ms) | set(ss)):
            if any(path.startswith(p + ".") or path.startswith(p + "[]") for p in missing):
                continue
            if ms.get(path) != ss.get(path):
                out.append({"step": step, "path": path, "moto": ms.get(path), "serve": ss.get(path)})
                if ms.get(path) is None or ss.get(path) is None:
                    missing.append(path)
    return out


def key(difference):
    """A difference without its reason, comparable with one listed in known_differences.json."""
    return (difference["step"], difference["path"], repr(difference["moto"]), repr(difference["serve"]))
