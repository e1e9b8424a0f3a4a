# Shared by the CLI test scripts in tests/cli (sourced). A test that cannot run here, for
# want of ../shared data or an optional library, is skipped: exit status 77,
# which tests/run reports as SKIP, not PASS. In CI (CI set and not "false")
# every prerequisite is installed, so the same condition fails instead.
ci() { [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; }
skip() { if ci; then echo "FAIL: $* (CI has every prerequisite)"; exit 1; fi; echo "SKIP: $*"; exit 77; }
