#!/usr/bin/python3
"""dockerd's default runtime here: runc, minus CAP_SYS_RESOURCE.

The VM's capability bounding set lacks CAP_SYS_RESOURCE alone, and a `--privileged` container asks
for every capability, so runc fails with "unable to apply caps: operation not permitted". kind's node
containers are privileged. This drops that one capability from the bundle's config.json (create, run)
or the --process file (exec), then execs the real runc with the arguments unchanged.

Only the standard library and the system python3: dockerd's shims run it outside any virtualenv.
"""

from __future__ import annotations

import json
import os
import sys

RUNC = os.environ.get("VMROLE_REAL_RUNC", "/usr/sbin/runc")
WITHHELD = "CAP_SYS_RESOURCE"
# runc's global options that take a value; anything else before the command is a flag.
GLOBAL_WITH_VALUE = frozenset({"--root", "--log", "--log-format", "--criu", "--rootless"})


def _command(argv: list[str]) -> tuple[str, list[str]]:
    """runc's command and the arguments after it."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return arg, argv[i + 1 :]
        i += 2 if arg in GLOBAL_WITH_VALUE else 1
    return "", []


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _drop(capabilities: dict[str, list[str]]) -> bool:
    changed = False
    for kind, caps in capabilities.items():
        if isinstance(caps, list) and WITHHELD in caps:
            capabilities[kind] = [c for c in caps if c != WITHHELD]
            changed = True
    return changed


def _rewrite(path: str, process_only: bool) -> None:
    with open(path) as f:
        spec = json.load(f)
    process = spec if process_only else spec.get("process") or {}
    if _drop(process.get("capabilities") or {}):
        tmp = f"{path}.vmrole-tmp"
        with open(tmp, "w") as f:
            json.dump(spec, f)
        os.replace(tmp, path)


def main() -> None:
    argv = sys.argv[1:]
    command, rest = _command(argv)
    if command in ("create", "run"):
        bundle = _option(rest, "--bundle", "-b") or "."
        _rewrite(os.path.join(bundle, "config.json"), process_only=False)
    elif command == "exec":
        process = _option(rest, "--process", "-p")
        if process:
            _rewrite(process, process_only=True)
    os.execv(RUNC, [RUNC, *argv])


if __name__ == "__main__":
    main()
