"""Install PyTorch for ``make install``: the CPU build, unless this machine has a CUDA GPU.

On Linux, PyPI's torch wheel is the CUDA build and pulls about twenty nvidia packages (several GB) that the
semantic tier never uses (it runs the model with onnxruntime; torch only exports it once). The PyTorch project's
CPU index serves the same version built for the CPU alone, so that is where torch comes from when no NVIDIA
driver is installed (``nvidia-smi`` absent). A machine with one gets the registry's build, which uses its GPU.
When the CPU index cannot be reached (a mirror that only proxies package registries, no route out), a short
probe says so and torch comes from the plain registry instead, whatever build that serves.

    python tools/install_torch.py            install into this interpreter's environment
    python tools/install_torch.py --plan     print the pip command it would run, and why
    python tools/install_torch.py --check    resolve that command as a machine without this one's pip settings
                                             would (pip --isolated --dry-run, no config files) and report the build

``TORCH_VERSION`` and ``TORCH_CPU_INDEX`` in the environment override the defaults below (the Makefile passes
its own). Runs on the standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT = 5.0  # seconds; an unreachable index usually fails at once (DNS), a filtered one hangs


def reachable(index: str) -> bool:
    """Whether the index answers for torch at all (any HTTP answer below 400)."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=PROBE_TIMEOUT) as response:
            return bool(response.status < 400)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def plan(version: str, index: str) -> tuple[list[str], str]:
    """(pip install arguments, one line saying which build and why)."""
    requirement = f"torch=={version}"
    if shutil.which("nvidia-smi"):
        return [requirement], "nvidia-smi found: torch from the package registry (its CUDA build on Linux)"
    if reachable(index):
        return ["--index-url", index, requirement], f"no CUDA GPU (nvidia-smi absent): the CPU build from {index}"
    return (
        [requirement],
        f"no CUDA GPU, but {index} cannot be reached: torch from the package registry instead "
        "(PyPI's Linux build is the CUDA one, several GB)",
    )


def check(args: list[str]) -> int:
    """Dry-run ``args`` with pip ignoring every config file and environment setting; report what it would get."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        command = [
            *(sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed"),
            *("--no-deps", "--quiet", "--disable-pip-version-check", "--timeout", "15", "--report", report, *args),
        ]
        # --isolated skips the user's config and PIP_* variables; only PIP_CONFIG_FILE=/dev/null also skips the
        # machine's global files (/etc/pip.conf, /etc/xdg/pip), which may add local wheel folders or constraints.
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            print(f"install_torch: pip could not resolve {' '.join(args)}", file=sys.stderr)
            return 1
        with open(report, encoding="utf-8") as handle:
            (item,) = json.load(handle)["install"]
    version = item["metadata"]["version"]
    url = item["download_info"]["url"]
    cuda = [r for r in item["metadata"].get("requires_dist", []) if r.startswith(("nvidia-", "cuda-"))]
    build = "a CUDA build" if cuda else "a CPU-only build"
    print(f"install_torch: a clean machine would install torch {version}, {build}, from {url}")
    if "--index-url" in args and (cuda or "+cpu" not in version):
        print("install_torch: the CPU index served something other than its CPU build", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="print the pip command and why, install nothing")
    mode.add_argument("--check", action="store_true", help="dry-run it as a clean machine would")
    options = parser.parse_args()
    args, why = plan(os.environ.get("TORCH_VERSION", VERSION), os.environ.get("TORCH_CPU_INDEX", CPU_INDEX))
    print(f"install_torch: {why}", file=sys.stderr)
    if options.plan:
        print(" ".join(["pip", "install", *args]))
        return 0
    if options.check:
        return check(args)
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
