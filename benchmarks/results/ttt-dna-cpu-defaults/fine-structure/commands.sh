#!/bin/bash
# Fine structure of the DNA defaults' final snapshots (issue 23 item 2): motif content of the planted JASPAR motifs
# and per-k k-mer JS, 1,000 fresh samples (seeds 10000-10999, Heun 9 levels, edm grid: the harness's sampler).
cd /work/main  # evaluation only: main at 1586c23 (sampling unchanged since the runs)
export OMP_NUM_THREADS=1
P=/work/main/.venv/bin/python
D=/work/main/benchmarks/results/ttt-dna-cpu-defaults
OUT=/work/bench/dna-fine; mkdir -p $OUT
MOT=MA0035.5,MA0140.3,MA0114.5,MA0047.4,MA0142.1,MA0143.5,MA0154.5,MA0080.7
for r in infonoise-s0 infonoise-bayes-s0 infonoise-s1 infonoise-bayes-s1 infonoise-s2 infonoise-bayes-s2; do
  [ -f $OUT/$r.json ] && continue
  $P generate.py --network $D/runs/$r/network-snapshot-000100.pt --outdir $OUT/$r --seeds 10000-10999 --batch 250 --steps 9 --grid edm --solver heun || exit 1
  $P dna_tool.py metrics --generated $(ls $OUT/$r/*.fa* | head -1) --reference /work/frozen-1739d2b/data/dna-synth-test.tsv --train /work/frozen-1739d2b/data/dna-synth.tsv --motifs $MOT --out $OUT/$r.json --threads 1 || exit 1
done
echo DNAFINE-DONE
