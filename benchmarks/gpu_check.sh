#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see benchmarks/results/*.md for what it gave):
#   IFIA speed options (bench_attacks), ART step speed fp32 / bf16+channels_last (bench_train), the CUDA unit tests,
#   and a few steps of the `paper` training profile (WRN-28-10, batch 256) through `python -m artlib train` on CUDA.
# Usage (repo root):  OUT=/tmp/gpu DATA=/path/with/cifar10-jpeg bash benchmarks/gpu_check.sh
#                     PART=attacks ... runs only the IFIA part (and the CUDA attribution tests)
#                     PART=paper ... the paper profile's dry run on CUDA (issue 22) and one real paper epoch of
#                     CIFAR-10 ART (WRN-28-10) on the carried train images: wall time, s/step, peak GPU memory
# The machine has no internet: captum comes as a wheel in .whl/ when it is not installed.
OUT=${OUT:-/tmp/gpu_check}; DATA=${DATA:-.gpudata}; mkdir -p "$OUT"
python3 -c "import captum" 2>/dev/null || python3 -m pip install -q --no-deps .whl/captum-*.whl
export PYTHONPATH=$PWD MPLBACKEND=Agg PYTHONUNBUFFERED=1 ARTLIB_DATA=$DATA
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, captum; print('torch', torch.__version__, 'captum', captum.__version__, torch.cuda.get_device_name())"

A="timeout 100 python3 benchmarks/bench_attacks.py --device cuda --images 128 --loop-images 16 --steps 2 --rounds 3 --out $OUT/attacks.md"
$A --batch-sizes 128 --captum-grads captum --pools native   # captum's own IG gradients (a root per path image), native max-pool backward
$A --batch-sizes 128 --pools native                         # + one autograd root per call (attribution.summed_gradients)
$A --batch-sizes 64 128 --profile                           # + max-pools recorded with a max_unpool2d backward (the default)
$A --batch-sizes 128 256 --cudnn-benchmark
$A --batch-sizes 128 256 --cudnn-benchmark --channels-last --amp --profile
T="timeout 100 python3 benchmarks/bench_train.py --device cuda --batch 128 --out $OUT/train.md"
if [ "${PART:-all}" = attacks ]; then
  $T --archs small-cnn --reps 4 --check
  timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_attribution.py tests/test_attacks.py tests/test_losses.py -k "cuda or summed or maxpool"
  exit 0
fi

if [ "${PART:-all}" = paper ]; then
  /usr/bin/time -f "dry run wall %e s" timeout 420 python3 -m artlib reproduce --profile paper --dry-run \
      --out "$OUT/dry-run" 2>&1 | grep -E "^(ok|FAILED|skip|total)|wall"
  timeout 170 python3 - "$DATA" "$OUT" <<'PY'
import sys, time, torch
from artlib import train
cfg = train.config("paper", "cifar10", "art", data_root=sys.argv[1], out_dir=sys.argv[2] + "/runs", epochs=1,
                   device="cuda", num_workers=4, progress=False, cache=False, test_subset=200)
torch.cuda.reset_peak_memory_stats()
t0 = time.time()
res = train.train(cfg)
wall, steps = time.time() - t0, res.log[-1]["step"]
print(f"paper ART epoch: {cfg.arch} batch {cfg.batch_size}, {steps} steps, {wall:.1f} s, {wall / steps:.3f} s/step, "
      f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, {torch.cuda.get_device_name()}")
PY
  exit 0
fi

$T --archs small-cnn resnet18 --reps 4 3 --check
$T --archs small-cnn resnet18 --reps 4 3 --amp --channels-last

timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_attribution.py::test_cuda_matches_cpu \
    tests/test_train.py::test_amp_bfloat16_and_channels_last_double_backprop tests/test_losses.py

for opts in "--amp false --channels-last false" "--amp true --channels-last true"; do
  echo "== paper profile, ART, WRN-28-10, batch 256, $opts"
  /usr/bin/time -f "wall %e s" timeout 120 python3 -m artlib train --profile paper --method art --epochs 1 \
      --max-steps 12 --data-root "$DATA" --out-dir /tmp/gpu_runs --run-name "art_${RANDOM}" --device cuda \
      --num-workers 4 --progress false $opts
  tail -n 3 /tmp/gpu_runs/art_*/steps.csv; rm -rf /tmp/gpu_runs
done
$T --archs wrn-28-10 --reps 2
