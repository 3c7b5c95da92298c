/*
 * The benchmark binaries the benchmark tests run (tests/CMakeLists.txt
 * defines each BENCH_<NAME>_PATH for bench_smoke and bench_report),
 * relative to the build tree (cgr_test_build_path); the report's path is
 * relative to the source tree (cgr_test_source_path), and the interpreter
 * is cgr_test_python().
 */
#ifndef CGR_TESTS_BENCH_PATHS_H
#define CGR_TESTS_BENCH_PATHS_H

#ifndef BENCH_REPLAY_PATH
#error "BENCH_REPLAY_PATH must name the bench_replay binary"
#endif
#ifndef BENCH_FUSED_COPY_PATH
#error "BENCH_FUSED_COPY_PATH must name the bench_fused_copy binary"
#endif
#ifndef BENCH_CAPTURE_PATH
#error "BENCH_CAPTURE_PATH must name the bench_capture binary"
#endif
#ifndef BENCH_STREAMS_PATH
#error "BENCH_STREAMS_PATH must name the bench_streams binary"
#endif
#ifndef BENCH_BATCHER_PATH
#error "BENCH_BATCHER_PATH must name the bench_batcher binary"
#endif
#ifndef BENCH_LANES_PATH
#error "BENCH_LANES_PATH must name the bench_lanes binary"
#endif
#ifndef BENCH_TP_PATH
#error "BENCH_TP_PATH must name the bench_tp binary"
#endif
#ifndef BENCH_HOST_PATH_PATH
#error "BENCH_HOST_PATH_PATH must name the bench_host_path binary"
#endif

#endif /* CGR_TESTS_BENCH_PATHS_H */
