#!/usr/bin/env python3
"""The functions of the hostwarden executable that a steady tick runs, from callgrind dumps,
as the symbol patterns agent/layout/hot-code.txt lists (agent/build.rs links them first).

A name is kept without its hash, so the list survives a rebuild with another toolchain or
dependency set: legacy mangling's trailing `17h<16 hex>E` becomes `17h*`, v0 mangling's crate
disambiguators `Cs<base62>_` become `Cs*_`. Compiler suffixes (`.llvm.N`, `.isra.N`, a
callgrind recursion mark `'N`) are cut the same way. Usage:

    hotcode.py OBJECT_SUFFIX DUMP... > agent/layout/hot-code.txt
"""
import re
import sys

ENTRY = re.compile(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$")


def functions(dump, object_suffix):
    """Names of the functions with cost in one dump whose object ends with object_suffix."""
    objects, names, current, found = {}, {}, None, set()
    with open(dump, errors="replace") as f:
        for line in f:
            m = ENTRY.match(line.rstrip("\n"))
            if not m:
                continue
            callee, kind, ident, name = m.groups()
            table = objects if kind == "ob" else names
            if name:
                table[ident] = name
            if callee:
                continue
            if kind == "ob":
                current = objects.get(ident)
            elif current and current.endswith(object_suffix) and names.get(ident):
                found.add(names[ident])
    return found


def pattern(name):
    """The hash-free pattern for a mangled name, or None for one no section is named after."""
    name = re.sub(r"'\d+$", "", name)
    if " " in name or name.startswith("0x"):
        return None  # callgrind's "(below main)", or an address without a symbol
    name = re.sub(r"\.(llvm|isra|constprop|part|cold)\..*$", "", name)
    name = re.sub(r"\.\d+$", "", name)
    m = re.match(r"^(_ZN.*17h)[0-9a-f]{16}E$", name)
    if m:
        return m.group(1) + "*"
    if name.startswith("_R"):
        return re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name) + "*"
    return name + "*"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    suffix, dumps = sys.argv[1], sys.argv[2:]
    patterns = set()
    for dump in dumps:
        for name in functions(dump, suffix):
            p = pattern(name)
            if p:
                patterns.add(p)
    if not patterns:
        sys.exit(f"hotcode.py: no function of an object ending {suffix!r} in {dumps}")
    print("\n".join(sorted(patterns)))


if __name__ == "__main__":
    main()
