#!/usr/bin/env bash
# One run of the parity study (issue: quality parity with the thesis's own code): train at the thesis
# code's budget (stage 1 = stage 2 = 1000 epochs, one torch thread), draw 1024 unconditional series, and
# score the run into results/parity/<dataset>.json with scripts/parity.py (thesis evaluator).
#
#   scripts/parity_run.sh NAME PROFILE SEED [KEY=VALUE ...]      (DS=ECG200 for another dataset)
#   scripts/parity_run.sh code-scaler-s0 thesis-code 0
#   scripts/parity_run.sh thesis-scaler-s1 thesis-text 1 latent_scaler=encoder_output
#
# The run folder is runs/parity/<dataset>-NAME (git-ignored); an interrupted run resumes from its checkpoint.
set -u
cd "$(dirname "$0")/.." && . .venv/bin/activate
export TVQ_EVALUATOR_DIR="${TVQ_EVALUATOR_DIR:-../shared/evaluators/lee2023-fcn}" TVQ_CACHE_DIR="${TVQ_CACHE_DIR:-$PWD/runs/cache}"
if [ $# -lt 3 ]; then sed -n 2,10p "$0" >&2; exit 2; fi
name=$1 prof=$2 seed=$3; shift 3
ds=${DS:-GunPoint}
run=runs/parity/$ds-$name
params=(-p stage1_epochs=1000 -p seed="$seed" -p threads=1)
for kv in "$@"; do params+=(-p "$kv"); done
mkdir -p runs/parity
{ echo "== $name start $(date +%H:%M:%S)"
  tvq train "$ds" -f "params/$prof.yaml" "${params[@]}" --out "$run" --no-progress &&
  tvq sample "$run" -n 1024 --threads 1 -o "$run/uncond.npy" &&
  python scripts/parity.py "$run" --name "$name" --out "results/parity/$ds.json" --threads 1 &&
  echo "== $name done $(date +%H:%M:%S)"; } >> "runs/parity/$ds-$name.log" 2>&1
