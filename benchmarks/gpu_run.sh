#!/usr/bin/env bash
# The device run of benchmarks/gpu.py for issue 15 (benchmarks/README.md says what it
# measures and what to do with the output). From the repository root:
#   bash benchmarks/gpu_run.sh                      # device tool timeout_s: 390
#   bash benchmarks/gpu_run.sh rerun PREV.json [PARTS]   # timeout_s: 240; PARTS default
#                                                   # extras,step,large
#   bash benchmarks/gpu_run.sh smoke                # no GPU: the CPU dry run (tests use it)
# Results land in $OUT (the device tool's folder; /tmp/lstmkit-gpu elsewhere): the report
# benchmarks-gpu.md, gpu.json (every number and the log), gpu-cudnn-faster.json and gpu.log.
set -o pipefail
py=${PYTHON:-python3}  # on the device machine, python3 is the one with torch and triton
out=${OUT:-/tmp/lstmkit-gpu}
mkdir -p "$out"
for v in $(env | grep -o '^LSTMKIT_TRITON_[A-Z_]*'); do unset "$v"; done  # defaults only
[ "${1:-}" = smoke ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$py" -c "import torch, triton; print('torch', torch.__version__, 'triton',
triton.__version__, 'cuda', torch.cuda.is_available())" || exit 1
files=(--out "$out/benchmarks-gpu.md" --json "$out/gpu.json"
       --dispatch-json "$out/gpu-cudnn-faster.json")
if [ "${1:-}" = smoke ]; then
    timeout -k 10 300 env PYTHONPATH=src "$py" benchmarks/gpu.py --smoke "${files[@]}" 2>&1 \
        | tee "$out/gpu.log"
elif [ "${1:-}" = rerun ]; then
    if [ ! -f "${2:-}" ]; then
        echo "rerun: give the earlier run's gpu.json (not found: '${2:-}')"
        exit 2
    fi
    timeout -k 10 220 env PYTHONPATH=src "$py" benchmarks/gpu.py --budget 150 \
        --parts "${3:-extras,step,large}" --merge "$2" "${files[@]}" 2>&1 | tee "$out/gpu.log"
elif [ -z "${1:-}" ]; then
    timeout -k 10 360 env PYTHONPATH=src "$py" benchmarks/gpu.py --budget 270 \
        "${files[@]}" 2>&1 | tee "$out/gpu.log"
else
    echo "usage: bash benchmarks/gpu_run.sh [smoke | rerun PREV.json [PARTS]]"
    exit 2
fi
