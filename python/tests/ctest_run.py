"""The pytest suite as one CTest test per backend (tests/python.cmake).

    ctest_run.py --backend host|cuda [pytest arguments]

CGR_LIBRARY and PYTHONPATH name the build's library and python/. On CUDA,
exits 77 (CTest's skip) when no GPU is usable, saying why, instead of
letting every test skip into a pass.
"""

import argparse
import os
import sys

import pytest


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("host", "cuda"), required=True)
    args, rest = parser.parse_known_args()
    os.environ["CGR_TEST_BACKEND"] = args.backend
    if args.backend == "cuda":
        import cgr

        try:
            cgr.Runtime(backend="cuda").close()
        except (cgr.NoDeviceError, cgr.UnsupportedError) as exc:
            print(f"skipped: no usable CUDA device: {exc}")
            return 77
    here = os.path.dirname(os.path.abspath(__file__))
    return pytest.main([here, "-q", "-p", "no:cacheprovider", "-rs"] + rest)


if __name__ == "__main__":
    sys.exit(main())
