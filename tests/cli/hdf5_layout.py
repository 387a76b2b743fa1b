#!/usr/bin/python3
"""hdf5_layout.py: compare the structure `h5dump -H` reports for a file with its table in
docs/hdf5-layout.md (used by test_hdf5_layout.sh).

    hdf5_layout.py show FILE.h5             the structure as a markdown table (for the docs)
    hdf5_layout.py check DOC.md KIND FILE   exit 1, listing the differences, unless every object,
                                            type, rank and attribute of FILE is the one the
                                            table under the heading naming KIND documents

Per-tensor datasets under /params, /ema, /adam/m and /adam/v are folded into one row
`<group>/<name>` (any rank); dataset shapes are compared by rank ("[N, 1, 28, 28]" is rank 4).
An object written "`/x` (optional)" in the table may be absent from a file; every other one must
be there.
"""
import re
import subprocess
import sys

TYPES = {"H5T_IEEE_F32LE": "float32", "H5T_IEEE_F64LE": "float64", "H5T_STD_I64LE": "int64",
         "H5T_STD_I32LE": "int32", "H5T_STRING": "string"}
TENSOR_GROUPS = ("/params/", "/ema/", "/adam/m/", "/adam/v/")


def fold(path):
    for g in TENSOR_GROUPS:
        if path.startswith(g) and "/" not in path[len(g):]:
            return g + "<name>"
    return path


def structure(path):
    """{object path: {kind, type, rank, attrs: {attribute: type}}} from h5dump -H."""
    out = subprocess.run(["h5dump", "-H", path], capture_output=True, text=True, check=True).stdout
    objs, stack = {}, []  # one entry per open brace: (kind, object path, attribute name)
    for line in out.splitlines():
        s = line.strip()
        m = re.match(r'(GROUP|DATASET|ATTRIBUTE) "([^"]*)" \{$', s)
        if m:
            kind, name = m.groups()
            parent = next((p for k, p, _ in reversed(stack) if k in ("GROUP", "DATASET")), "")
            if kind == "ATTRIBUTE":
                stack.append((kind, parent, name))
                continue
            full = "/" if name == "/" else parent.rstrip("/") + "/" + name
            stack.append((kind, full, None))
            objs.setdefault(fold(full), {"kind": kind.lower(), "type": "group" if kind == "GROUP" else None,
                                         "rank": None, "attrs": {}})
            continue
        top = next(((k, p, a) for k, p, a in reversed(stack) if k != "OTHER"), None)
        if s.startswith("DATATYPE") and top:
            t = TYPES.get(s.split()[1], s.split()[1])
            kind, full, attr = top
            if kind == "ATTRIBUTE":
                objs[fold(full)]["attrs"][attr] = t
            elif kind == "DATASET":
                objs[fold(full)]["type"] = t
        if s.startswith("DATASPACE") and top and top[0] == "DATASET":
            dims = re.search(r"\( ([^)]*) \)", s)
            rank = len(dims.group(1).split(",")) if dims else 0
            o = objs[fold(top[1])]
            o["rank"] = "*" if fold(top[1]) != top[1] else rank
        if s.endswith("{") and not m:
            stack.append(("OTHER", None, None))
        if s == "}" and stack:
            stack.pop()
    return objs


def show(path):
    print("| object | type | shape | attributes |")
    print("|---|---|---|---|")
    for p, o in sorted(structure(path).items()):
        shape = "-" if o["kind"] == "group" else ("any" if o["rank"] == "*" else f"rank {o['rank']}")
        attrs = ", ".join(f"{k}: {v}" for k, v in sorted(o["attrs"].items()))
        print(f"| `{p}` | {o['type']} | {shape} | {attrs} |")


def documented(doc, kind):
    """The table following the first heading that contains `kind`."""
    lines = open(doc).read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("#") and kind in l), None)
    if start is None:
        sys.exit(f"{doc}: no heading mentions {kind}")
    rows = {}
    for l in lines[start + 1:]:
        if l.startswith("#"):
            break
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        path, _, note = cells[0].partition("` ")
        path = path.strip("`")
        shape = cells[2]
        rank = None if shape == "-" else ("*" if shape == "any" else len(shape.split(",")))
        attrs = {}
        for a in filter(None, (x.strip() for x in cells[3].split(","))):
            name, _, t = a.partition(":")
            attrs[name.strip().strip("`")] = t.strip()
        rows[path] = {"type": cells[1], "rank": rank, "attrs": attrs, "optional": note == "(optional)"}
    return rows


def check(doc, kind, path):
    want, have = documented(doc, kind), structure(path)
    problems = []
    for p in sorted(set(want) | set(have)):
        if p not in have:
            if not want[p]["optional"]:
                problems.append(f"{p}: documented, not in the file")
            continue
        if p not in want:
            problems.append(f"{p}: in the file, not documented")
            continue
        w, h = want[p], have[p]
        if w["type"] != h["type"]:
            problems.append(f"{p}: type {h['type']}, documented {w['type']}")
        if w["rank"] != h["rank"] and w["rank"] != "*":
            problems.append(f"{p}: rank {h['rank']}, documented {w['rank']}")
        if w["attrs"] != h["attrs"]:
            problems.append(f"{p}: attributes {sorted(h['attrs'].items())}, documented {sorted(w['attrs'].items())}")
    for line in problems:
        print(f"  {path}: {line}")
    return not problems


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "show":
        show(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "check":
        sys.exit(0 if check(*sys.argv[2:]) else 1)
    else:
        sys.exit(__doc__)
