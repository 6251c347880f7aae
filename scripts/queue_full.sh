#!/usr/bin/env bash
# One dataset of the full-budget queue (issue 24): tvq reproduce at params/thesis.yaml, one torch thread,
# checkpoints under runs/cache (git-ignored) so that an interrupted run resumes when this is run again.
# usage: scripts/queue_full.sh NAME   (cheapest first: benchmarks/plan_reproduce.py --offline)
set -u
cd "$(dirname "$0")/.." && . .venv/bin/activate
export TVQ_EVALUATOR_DIR="${TVQ_EVALUATOR_DIR:-../shared/evaluators/lee2023-fcn}" TVQ_CACHE_DIR="${TVQ_CACHE_DIR:-$PWD/runs/cache}"
mkdir -p runs
tvq reproduce "$1" -f params/thesis.yaml -p threads=1 --no-progress >> runs/queue_$1.log 2>&1 && echo "finished $1 $(date +%H:%M)" >> runs/queue.log
