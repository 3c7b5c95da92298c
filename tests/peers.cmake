# The peers (peers/README.md): the same decode step replayed by other
# stacks. Included from tests/CMakeLists.txt. The smoke run needs PyTorch
# with CUDA and reports itself skipped (exit code 77) where either is
# missing; the usage test needs neither. Pick the interpreter that has
# PyTorch with -DPython3_EXECUTABLE=/path/to/python3.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME peers.torch_replay_smoke
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/peers/torch_replay.py --smoke)
  set_tests_properties(peers.torch_replay_smoke PROPERTIES
    LABELS "cuda;peers"
    SKIP_RETURN_CODE 77
    TIMEOUT 300)

  add_test(NAME peers.torch_replay_usage
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/peers/test_torch_replay_cli.py)
  set_tests_properties(peers.torch_replay_usage PROPERTIES
    LABELS "host;peers"
    TIMEOUT 120)
else()
  message(STATUS "cgr: no Python 3 interpreter found; the peers tests are off")
endif()
