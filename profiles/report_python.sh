#!/usr/bin/env bash
# Prints the first Python 3 here that imports every module named on the
# command line (matplotlib when none is: profiles/report.py draws its plots
# with it, and the report tests need it): python3 on PATH, then Debian's
# /usr/bin/python3; plain python3 when neither has them all.
modules=("$@")
((${#modules[@]})) || modules=(matplotlib)
imports=$(printf 'import %s;' "${modules[@]}")
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c "$imports" >/dev/null 2>&1; then
    echo "$candidate"
    exit 0
  fi
done
echo python3
