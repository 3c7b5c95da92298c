# The Python package (python/, docs/python.md), through CTest. Included from
# tests/CMakeLists.txt.
#
#   python.host         the pytest suite against this build's libcgr, on the
#                       host backend
#   python.cuda         the same suite on CUDA, PyTorch's tests with it;
#                       skipped (exit code 77) without a usable GPU
#   python.example      python/examples/decode.py on the host backend: every
#                       replay mode gives the eager reference's tokens
#   python.pip_install  `pip install .` of the source tree into a fresh
#                       virtual environment, then the example from outside
#                       the tree; skipped when PyPI (the build backend) is
#                       out of reach
#
# The interpreter needs numpy and pytest (scripts/deps.sh test installs
# Debian's); pick another with -DCGR_PYTHON=/path/to/python3.
set(CGR_PYTHON "" CACHE FILEPATH "Python 3 with numpy and pytest for python/")
if(NOT CGR_PYTHON)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  foreach(candidate ${Python3_EXECUTABLE} /usr/bin/python3)
    if(EXISTS "${candidate}" AND NOT CGR_PYTHON)
      execute_process(COMMAND "${candidate}" -c "import numpy, pytest"
        RESULT_VARIABLE missing OUTPUT_QUIET ERROR_QUIET)
      if(missing EQUAL 0)
        set(CGR_PYTHON "${candidate}")
      endif()
    endif()
  endforeach()
endif()

set(python_env
  "CGR_LIBRARY=$<TARGET_FILE:cgr>"
  "PYTHONPATH=${PROJECT_SOURCE_DIR}/python"
  "PYTHONDONTWRITEBYTECODE=1")
# Sanitizer builds. An AddressSanitizer libcgr.so loads into an
# uninstrumented Python only after the sanitizer runtimes: preload them, so
# the suite runs the library under ASan and UBSan (Python's own allocations
# are not leaks of cgr's: leak checking off). ThreadSanitizer cannot be
# preloaded into a running interpreter: the TSan build runs no Python
# tests (the default and ASan builds do). pip_install builds its own
# library, so it runs in builds without a sanitizer only.
set(python_sanitizer "")
if(CMAKE_C_FLAGS MATCHES "-fsanitize=[^ ]*thread")
  set(python_sanitizer thread)
  message(STATUS "cgr: ThreadSanitizer build: the python.* tests are off")
elseif(CMAKE_C_FLAGS MATCHES "-fsanitize=[^ ]*address")
  set(python_sanitizer address)
  set(preload "")
  foreach(runtime asan ubsan)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=lib${runtime}.so
      OUTPUT_VARIABLE path OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(EXISTS "${path}")
      string(APPEND preload " ${path}")
    endif()
  endforeach()
  string(STRIP "${preload}" preload)
  list(APPEND python_env "LD_PRELOAD=${preload}" "ASAN_OPTIONS=detect_leaks=0")
endif()
if(CGR_PYTHON AND NOT python_sanitizer STREQUAL "thread")
  foreach(backend host cuda)
    add_test(NAME python.${backend}
      COMMAND ${CGR_PYTHON} ${PROJECT_SOURCE_DIR}/python/tests/ctest_run.py
        --backend ${backend})
    set_tests_properties(python.${backend} PROPERTIES
      ENVIRONMENT "${python_env}"
      LABELS "${backend};python"
      SKIP_RETURN_CODE 77
      TIMEOUT 600)
  endforeach()
  add_test(NAME python.example
    COMMAND ${CGR_PYTHON} ${PROJECT_SOURCE_DIR}/python/examples/decode.py
      --backend host)
  set_tests_properties(python.example PROPERTIES
    ENVIRONMENT "${python_env}"
    LABELS "host;python"
    PASS_REGULAR_EXPRESSION "all modes: identical tokens"
    TIMEOUT 300)
  if(NOT python_sanitizer)
  add_test(NAME python.pip_install
    COMMAND bash ${PROJECT_SOURCE_DIR}/tests/python_install.sh
      ${CGR_PYTHON} ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/python-install)
  set_tests_properties(python.pip_install PROPERTIES
    LABELS "host;python"
    SKIP_RETURN_CODE 77
    TIMEOUT 900)
  endif()
elseif(NOT CGR_PYTHON)
  # Not a skip: the suite cannot say whether the package works.
  add_test(NAME python.interpreter
    COMMAND ${CMAKE_COMMAND} -E echo
      "no Python 3 with numpy and pytest: run scripts/deps.sh test, or pass -DCGR_PYTHON=")
  set_tests_properties(python.interpreter PROPERTIES
    LABELS "host;python" WILL_FAIL TRUE)
  message(WARNING "cgr: no Python 3 with numpy and pytest; python.* tests fail")
endif()

# python.bench_smoke: profiles/bench_python.py --quick on the host backend,
# through tests/gpu_run/check_bench_python.py, which holds it to a JSON
# line per cgr row (every replay mode x path x source x batch), a headline
# per batch, CPU timings, and the PyTorch rows n/a with their reason.
if(CGR_PYTHON AND NOT python_sanitizer STREQUAL "thread")
  add_test(NAME python.bench_smoke
    COMMAND ${CGR_PYTHON} ${PROJECT_SOURCE_DIR}/tests/gpu_run/check_bench_python.py
      --backend host --
      ${CGR_PYTHON} ${PROJECT_SOURCE_DIR}/profiles/bench_python.py
      --quick --backend host --json)
  set_tests_properties(python.bench_smoke PROPERTIES
    ENVIRONMENT "${python_env}"
    LABELS "host;python"
    TIMEOUT 120)
endif()
