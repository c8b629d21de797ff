#!/usr/bin/env python3
"""iscsi-conformance with --allow-sanitize: libiscsi's SANITIZE tests on a throwaway LU.

usage: sanitize-conformance.py TOOL URL [iscsi-conformance options: --family, --test,
       --second-url, --json, --timeout, --quiet]

TOOL is ../shared/tools/iscsi-conformance. It never passes iscsi-test-cu's --allow-sanitize
(-S), without which every SCSI.Sanitize test is skipped. This loads TOOL as a module and runs
its own main() (arguments, parsing into PASS/SKIP/FAIL, output, --json) with one change: each
iscsi-test-cu run gets --allow-sanitize. So the verdicts follow exactly the same rules as every
other conformance run of scripts/test.sh. Destructive: SANITIZE erases the whole LU.
"""
import importlib.machinery
import importlib.util
import subprocess
import sys


def load_tool(path):
    loader = importlib.machinery.SourceFileLoader("iscsi_conformance", path)
    spec = importlib.util.spec_from_loader("iscsi_conformance", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def with_allow_sanitize(tool):
    def run_family(url, family, second, timeout):
        cmd = ["iscsi-test-cu", "-d", "-v", "--allow-sanitize", "-t", family, url]
        if second:
            cmd.append(second)
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout, text=True, errors="replace")
            return p.stdout, False
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return out, True
    # The tool's main() looks run_family up in its module at call time.
    tool.run_family = run_family


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    tool = load_tool(sys.argv[1])
    if not callable(getattr(tool, "run_family", None)) or not callable(getattr(tool, "main", None)):
        print(f"{sys.argv[1]}: no run_family()/main(): not the iscsi-conformance this script wraps", file=sys.stderr)
        sys.exit(2)
    with_allow_sanitize(tool)
    sys.argv = [sys.argv[1]] + sys.argv[2:]
    tool.main()


if __name__ == "__main__":
    main()
