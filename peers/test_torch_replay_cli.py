#!/usr/bin/env python3
"""torch_replay.py's command line, checked where PyTorch may be missing:
--help exits 0 and states the exit codes, a bad option exits 2 naming it
(before torch is imported, so also without torch), and a run without
PyTorch exits 77 with one line that says so. Its grids are bench_replay's
(read from profiles/bench_replay.c), so the two runs measure the same
configurations, and each row says the source its copies read. Run by CTest
as peers.torch_replay_usage; exits 0 when every check passes, 1
otherwise."""

import importlib.util
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "torch_replay.py")
BENCH_REPLAY = os.path.join(HERE, "..", "profiles", "bench_replay.c")


def load_peer():
    """torch_replay.py as a module (it imports torch only when it runs)."""
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    spec = importlib.util.spec_from_file_location("torch_replay", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_replay_grids():
    """bench_replay.c's choose_grid, as the peer's GRIDS: per grid name,
    (buckets, pages per row, kernels, steps, warm-up steps)."""
    with open(BENCH_REPLAY, encoding="utf-8") as f:
        source = f.read()
    body = re.search(r"static void choose_grid\(bench \*b\) \{(.*?)\n\}",
                     source, re.S).group(1)
    arrays = {m.group(1): tuple(int(x) for x in m.group(2).split(","))
              for m in re.finditer(r"(\w+)\[\] = \{([^}]*)\};", body)}
    default_steps = int(re.search(r"long steps = (\d+);", body).group(1))
    grids = {}
    for case in re.finditer(r"case BENCH_GRID_(\w+):(.*?)break;", body, re.S):
        name, text = case.group(1).lower(), case.group(2)
        steps = re.search(r"\bsteps = (\d+);", text)
        grids[name] = (arrays[f"{name}_buckets"], arrays[f"{name}_widths"],
                       arrays[f"{name}_kernels"],
                       int(steps.group(1)) if steps else default_steps,
                       int(re.search(r"warmup = (\d+);", text).group(1)))
    return grids


def run_script(*args, no_torch=False):
    env = dict(os.environ)
    env.pop("CGR_PEER_FORCE_NO_TORCH", None)
    if no_torch:
        env["CGR_PEER_FORCE_NO_TORCH"] = "1"
    return subprocess.run([sys.executable, SCRIPT, *args], env=env,
                          capture_output=True, text=True, timeout=60)


class TorchReplayCli(unittest.TestCase):
    def test_help_exits_0_and_lists_the_exit_codes(self):
        done = run_script("--help")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("exit status", done.stdout)
        for code in ("0 ", "1 ", "2 ", "77 "):
            self.assertIn(code, done.stdout)
        self.assertIn("--steps", done.stdout)

    def test_zero_steps_exits_2_naming_steps(self):
        done = run_script("--steps", "0", no_torch=True)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("--steps", done.stderr)

    def test_steps_that_are_not_a_number_exit_2(self):
        for value in ("abc", "-5", "1.5", "10000001"):
            done = run_script(f"--steps={value}", no_torch=True)
            self.assertEqual(done.returncode, 2, value)
            self.assertIn("--steps", done.stderr)

    def test_unknown_option_exits_2(self):
        done = run_script("--fast", no_torch=True)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("--fast", done.stderr)

    def test_empty_out_file_name_exits_2(self):
        done = run_script("--out=", no_torch=True)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("--out", done.stderr)

    def test_grids_are_bench_replays(self):
        grids = bench_replay_grids()
        self.assertEqual(sorted(grids), ["full", "quick", "smoke"])
        self.assertEqual(load_peer().GRIDS, grids)

    def test_every_method_names_its_source(self):
        peer = load_peer()
        self.assertEqual(peer.SOURCES["torch"], "pinned")
        self.assertEqual(peer.SOURCES["torch_pageable"], "host")
        options = peer.parse_options(["--smoke"])
        result = {"host_median": 2.0, "host_p99": 3.0, "prepare_median": 1.0,
                  "gpu_step_us": 5.0, "launches_per_step": 7,
                  "bytes_per_step": 100}
        for method in peer.METHODS:
            row = peer.row_record(options, (8, 16, 8), method, result, 1.0)
            self.assertEqual(row["source"], peer.SOURCES[method])
            self.assertIn(row["source"], ("host", "pinned"))

    def test_without_torch_exits_77_with_one_clear_line(self):
        done = run_script("--smoke", no_torch=True)
        self.assertEqual(done.returncode, 77, done.stderr)
        self.assertEqual(done.stdout, "")
        lines = done.stderr.splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertIn("PyTorch", lines[0])


if __name__ == "__main__":
    unittest.main()
