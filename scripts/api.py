#!/usr/bin/env python3
"""Prints the public API of the library products, one declaration per line, from the symbol
graphs `swift package dump-symbol-graph` writes (public only: package, internal and @_spi
declarations are not API). Used by scripts/api.sh; see CHANGELOG.md, "What is API"."""
import json, sys, glob, os

MODULES = ["EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO", "EndpointMuxServiceLifecycle"]

def declaration(symbol):
    fragments = symbol.get("declarationFragments") or []
    text = "".join(f["spelling"] for f in fragments)
    return " ".join(text.split())

def main(directory):
    for module in MODULES:
        lines = set()
        for path in glob.glob(os.path.join(directory, f"{module}.symbols.json")) + \
                    glob.glob(os.path.join(directory, f"{module}@*.symbols.json")):
            graph = json.load(open(path))
            for symbol in graph["symbols"]:
                if symbol.get("accessLevel") not in ("public", "open"):
                    continue
                # Declared in this module's sources (not synthesized, not a default
                # implementation inherited from another module's protocol extension).
                if f"/Sources/{module}/" not in symbol.get("location", {}).get("uri", ""):
                    continue
                owner = ".".join(symbol["pathComponents"][:-1])
                prefix = f"{owner}: " if owner else ""
                lines.add(f"{module} | {prefix}{declaration(symbol)}")
        for line in sorted(lines):
            print(line)

if __name__ == "__main__":
    main(sys.argv[1])
