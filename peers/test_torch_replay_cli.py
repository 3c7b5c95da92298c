#!/usr/bin/env python3
"""torch_replay.py's command line, checked where PyTorch may be missing:
--help exits 0 and states the exit codes, a bad option exits 2 naming it
(before torch is imported, so also without torch), and a run without
PyTorch exits 77 with one line that says so. Run by CTest as
peers.torch_replay_usage; exits 0 when every check passes, 1 otherwise."""

import os
import subprocess
import sys
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "torch_replay.py")


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

    def test_without_torch_exits_77_with_one_clear_line(self):
        done = run_script("--smoke", no_torch=True)
        self.assertEqual(done.returncode, 77, done.stderr)
        self.assertEqual(done.stdout, "")
        lines = done.stderr.splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertIn("PyTorch", lines[0])


if __name__ == "__main__":
    unittest.main()
