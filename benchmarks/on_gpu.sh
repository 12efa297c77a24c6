#!/usr/bin/env bash
# Issue 16, item 7: the CUDA tests and the benchmarks on a machine with a GPU, in one pass that fits a
# short lease. Run from the repository root: bash benchmarks/on_gpu.sh OUT_DIR [PYTHON [PART...]]
# PARTS: cuda_tests run_on_cuda bench_sweep bench_srn bench_gated (all by default).
# Each part has its own time limit and its own log in OUT_DIR, and a failing part does not stop the
# next: what matters most (the CUDA tests, a run on the GPU) comes first.
set -u
out=${1:?usage: bash benchmarks/on_gpu.sh OUT_DIR [PYTHON [PART...]]}
python=${2:-python3}
shift $(($# < 2 ? $# : 2))
wanted=" ${*:-cuda_tests run_on_cuda bench_sweep bench_srn bench_gated} "
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

part() {  # part NAME SECONDS COMMAND...: run COMMAND under a time limit, its output to OUT_DIR/NAME.log
    local name=$1 limit=$2
    shift 2
    [[ $wanted == *" $name "* ]] || return 0
    local started=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local status=$?
    echo "== $name: exit $status in $((SECONDS - started)) s (limit $limit s)" | tee -a "$out/parts.txt"
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    "$python" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'cores', torch.get_num_threads())"
    nproc
} >"$out/parts.txt" 2>&1

# The tests that need a CUDA device (and their files' CPU tests beside them).
part cuda_tests 90 "$python" -m pytest -q -rs -p no:cacheprovider tests/models/test_srn_bptt.py \
    tests/sweep/backends/test_vectorized.py tests/models/test_gated.py
# A shipped experiment, trained on the GPU through the CLI.
part run_on_cuda 60 "$python" -c "from gradexp.cli import main; main()" run configs/srn_explode.yaml \
    --set train.device=cuda --out "$out/srn_explode_cuda"
cp "$out"/srn_explode_cuda/*/summary.json "$out/run_on_cuda_summary.json" 2>/dev/null
cp "$out"/srn_explode_cuda/*/config.yaml "$out/run_on_cuda_config.yaml" 2>/dev/null
rm -rf "$out/srn_explode_cuda"
# 64-run sweeps of 20 epochs (issue 16's length), one at a time against one vectorized batch on the GPU.
part bench_sweep 150 "$python" benchmarks/bench_sweep.py --device cuda
# E1 side by side, and scaling with length and width, on the GPU.
part bench_srn 300 "$python" benchmarks/bench_srn.py --quick --device cuda --sections 1,2
# The gated models' loop against cuDNN's LSTM and GRU kernels.
part bench_gated 90 "$python" benchmarks/bench_gated.py --repeats 2 --device cuda
