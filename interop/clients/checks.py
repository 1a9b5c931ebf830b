"""The checks' bookkeeping the scripts of this folder share: a check runs
at once, is counted, and prints "ok      NAME" or "FAILED  NAME: why (line
N)", N the line of the running script it failed at, under any library
frames; `summary` prints the counts and is the exit status."""

import os
import sys
import traceback

passed = 0
failed = 0
_SCRIPT = os.path.abspath(sys.argv[0])


def check(name):
    """Runs the decorated function at once as the check NAME; what it
    returns, if anything, is printed after the name."""

    def run(function):
        global passed, failed
        try:
            note = function()
        except Exception as error:  # noqa: BLE001 - any failure is the check's
            failed += 1
            frames = traceback.extract_tb(error.__traceback__)
            ours = [f for f in frames if os.path.abspath(f.filename) == _SCRIPT]
            line = ours[-1].lineno if ours else "?"
            print(f"FAILED  {name}: {type(error).__name__}: {error} (line {line})")
        else:
            passed += 1
            print(f"ok      {name}" + (f" ({note})" if note else ""))
        return function

    return run


def expect(condition, *context):
    if not condition:
        raise AssertionError(repr(context))


def summary(what):
    """Prints WHAT's counts; the exit status: 1 if any check failed."""
    print(f"{what}: {passed} passed, {failed} failed")
    return 1 if failed else 0
