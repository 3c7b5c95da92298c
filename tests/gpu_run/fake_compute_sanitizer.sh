#!/usr/bin/env bash
# A stand-in for compute-sanitizer, for rehearsing profiles/gpu_run.sh on a
# machine without a GPU (tests/gpu_run/rehearsal.sh, .ci/run). It checks
# nothing: it runs the program and prints the tool's closing line, so the
# rehearsal exercises gpu_run.sh's verdict logic, and it says it is a
# stand-in. FAKE_SANITIZER_ERRORS=N makes it report N errors and exit with
# the --error-exitcode, as the real tool does when it finds some.
set -uo pipefail
tool=memcheck
error_exitcode=1
while (($#)); do
  case $1 in
  --tool) tool=$2; shift 2 ;;
  --error-exitcode) error_exitcode=$2; shift 2 ;;
  --print-limit) shift 2 ;;
  --version) echo "fake compute-sanitizer (a rehearsal stand-in)"; exit 0 ;;
  --*) shift ;;
  *) break ;;
  esac
done
echo "========= FAKE COMPUTE-SANITIZER ($tool): a rehearsal stand-in, no tool ran"
"$@"
status=$?
errors=${FAKE_SANITIZER_ERRORS:-0}
echo "========= ERROR SUMMARY: $errors errors"
if ((errors > 0)); then
  exit "$error_exitcode"
fi
exit "$status"
