#!/usr/bin/env bash
# tilerun GPU check: one command, under 8 minutes, on a machine with one NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]      # e.g. --quick, --batch-size 32
#
# Assumes torch with CUDA is already installed (PYTHON=... picks the interpreter; default
# python). If `import tilerun` fails it installs tilerun editable without dependencies, plus
# only the non-torch dependencies that are missing. Then it runs benchmarks/gpu_check.py (see
# its docstring for what each number means) and tees the markdown report into
# benchmarks/gpu_check_last.txt, or $OUT/gpu_check.txt when OUT is set; progress and errors go
# to the same path with .log. Every step has its own timeout; all together stay under 8 min.
# Exit status: gpu_check.py's (0: all steps ran, 1: a step crashed, 2: no CUDA, 124: timed out).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
TOTAL_S=470 # the whole command, timeouts included (8 min = 480 s)
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  report=$OUT/gpu_check.txt
else
  report=benchmarks/gpu_check_last.txt
fi
logfile=${report%.txt}.log
left() { echo $((TOTAL_S - SECONDS)); }
run() { echo "+ $*" >&2; "$@"; }

echo "== 1/3 environment ($(date -Is), $PWD)"
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu \
  --format=csv || echo "nvidia-smi: not available"
timeout 60 "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
  "available:", torch.cuda.is_available())'

echo "== 2/3 tilerun import check"
if timeout 60 "$PY" -c 'import tilerun' 2>/dev/null; then
  echo "tilerun is importable: nothing to install"
else
  echo "tilerun is not importable: installing it (editable, no dependencies)"
  run timeout 120 "$PY" -m pip install --quiet --no-deps -e .
  # The non-torch requirements of pyproject.toml that are missing or too old (extras included).
  missing_text=$(timeout 30 "$PY" - <<'EOF'
import re
from importlib.metadata import PackageNotFoundError, requires, version

try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

text = open("pyproject.toml", encoding="utf-8").read()
block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
deps = re.findall(r'^\s*"([^"]+)"', block, re.M)


def installed(req):
    try:
        found = version(req.name)
    except PackageNotFoundError:
        return False
    if not req.specifier.contains(found, prereleases=True):
        return False
    for line in requires(req.name) or []:  # what the requested extras add
        sub = Requirement(line)
        if sub.marker and any(sub.marker.evaluate({"extra": e}) for e in req.extras):
            try:
                version(sub.name)
            except PackageNotFoundError:
                return False
    return True


for dep in deps:
    req = Requirement(dep)
    if req.name != "torch" and not installed(req):
        print(dep)
EOF
  )
  mapfile -t missing < <(printf '%s\n' "$missing_text" | sed '/^$/d')
  if ((${#missing[@]})); then
    run timeout 240 "$PY" -m pip install --quiet "${missing[@]}"
  else
    echo "all dependencies present"
  fi
  timeout 60 "$PY" -c 'import tilerun; print("tilerun", tilerun.__version__, tilerun.__file__)'
fi

echo "== 3/3 gpu_check.py ($(left) s left; report -> $report)"
limit=$(($(left) - 25))            # leaves room for --kill-after
budget=$((limit - 120))            # no new step starts later than this (a step takes < 2 min)
rc=0
PYTHONUNBUFFERED=1 timeout --kill-after=20 "$limit" \
  "$PY" benchmarks/gpu_check.py --budget "$budget" "$@" \
  2> >(tee "$logfile" >&2) | tee "$report" || rc=$?
sleep 0.2 # let the stderr tee finish
echo "== done in ${SECONDS} s, exit status $rc; report: $report, log: $logfile"
exit "$rc"
