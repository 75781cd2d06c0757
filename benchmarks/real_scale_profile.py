"""Where the time of an attack step goes at the users' scale (issue 21): the per-iteration cost of an
attack split into its step and its fixed cost, and an operator profile of one step against the bare pass.

``real_scale.py`` times each attack at 2-3 iterations, so its ratios mix the cost of a step with the fixed
costs of the attack (RP-PGD's clean forward for the region state, SEA's scoring of each radius stage's
start, the random start) spread over those few iterations. Here each attack runs at two iteration counts
``s1 < s2`` (fastest of ``--rounds``, the bare pass timed between them) and

    step  = (T(s2) - T(s1)) / (s2 - s1)      (the marginal cost of one more iteration)
    fixed = T(s1) - s1 * step                 (what the attack pays once, whatever its length)

are reported in bare passes (forward + input backward of the mean CE on label-resolution logits). Then
``torch.profiler`` records one bare pass and one one-iteration attack, and the table lists the operators
whose self CPU time differs most between the two: where the extra time of an attack step is spent.

    python benchmarks/real_scale_profile.py [--cases NAME ...] [--rounds 1] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from real_scale import ALPHA, EPS, bare_pass, case_inputs, fastest  # this folder is on sys.path when run
from run_benchmarks import commit_id, device_name
from torch.profiler import ProfilerActivity, profile

from fastsegadv import attacks as A

HERE = Path(__file__).resolve().parent

# case -> (shape of real_scale.py, attack, s1, s2); SEA's APGD runs one stage per third of its iterations
CASES = {
    "pgd_slide": ("segformer_b0_slide", "pgd", 1, 4),
    "segpgd_slide": ("segformer_b0_slide", "segpgd", 1, 4),
    "sea_apgd_slide": ("segformer_b0_slide", "sea_apgd", 3, 6),
    "rp_pgd_segformer": ("segformer_b0_1024x2048", "rp_pgd", 1, 4),
    "sea_apgd_segformer": ("segformer_b0_1024x2048", "sea_apgd", 3, 6),
}
ATTACKS = {"pgd": A.pgd, "segpgd": A.segpgd, "rp_pgd": A.rp_pgd, "sea_apgd": A.sea_apgd}


def op_table(prof) -> dict[str, float]:
    """operator name -> self CPU seconds."""
    return {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}


def profile_once(fn) -> dict[str, float]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return op_table(prof)


def run_case(name: str, rounds: int, divisor: int, top: int) -> dict:
    shape_name, attack, s1, s2 = CASES[name]
    model, x, y = case_inputs(shape_name, divisor)
    fn = ATTACKS[attack]

    def run(steps):
        kw = {} if attack == "sea_apgd" else {"alpha": ALPHA}
        return fn(model, x, y, eps=EPS, steps=steps, seed=0, **kw)

    bare = lambda: bare_pass(model, x, y)  # noqa: E731
    bare(), run(s1)  # warm-up: first-touch allocations
    t_bare = [fastest(bare, rounds)]
    t1 = fastest(lambda: run(s1), rounds)
    t_bare.append(fastest(bare, rounds))
    t2 = fastest(lambda: run(s2), rounds)
    t_bare.append(fastest(bare, rounds))
    b = min(t_bare)
    step = (t2 - t1) / (s2 - s1)
    fixed = t1 - s1 * step
    ops_bare = profile_once(bare)
    ops_attack = profile_once(lambda: run(s1))
    diff = {k: ops_attack.get(k, 0.0) / s1 - ops_bare.get(k, 0.0) for k in set(ops_bare) | set(ops_attack)}
    biggest = sorted(diff, key=lambda k: -abs(diff[k]))[:top]
    row = {"case": name, "shape": shape_name, "attack": attack, "s1": s1, "s2": s2, "bare_s": b,
           "bare_s_each": t_bare, "T_s1": t1, "T_s2": t2, "step_s": step, "fixed_s": fixed,
           "step_x_bare": step / b, "fixed_in_bare_passes": fixed / b, "x_bare_at_s1": t1 / s1 / b,
           "profiled_total_bare_s": sum(ops_bare.values()), "profiled_total_attack_s": sum(ops_attack.values()),
           "ops": [{"op": k, "bare_s": ops_bare.get(k, 0.0), "attack_s": ops_attack.get(k, 0.0),
                    "extra_per_iteration_s": diff[k]} for k in biggest]}
    print(json.dumps({k: v for k, v in row.items() if k != "ops"}), flush=True)
    return row


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Where an attack step's time goes at the users' scale: {meta['device']}, torch {meta['torch']}, "
             f"commit {meta['commit']}", "",
             f"Fastest of {meta['rounds']} round(s); random weights; nothing here is a GPU number. step = "
             "(T(s2) - T(s1)) / (s2 - s1), fixed = T(s1) - s1 * step, both in bare passes (forward + input "
             "backward of the mean CE at label resolution, the fastest of three timed between the runs).", "",
             "| case | s1, s2 | bare s | step x bare | fixed (bare passes) | x bare at s1 iterations |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['s1']}, {r['s2']} | {r['bare_s']:.2f} | {r['step_x_bare']:.2f} | "
                     f"{r['fixed_in_bare_passes']:.2f} | {r['x_bare_at_s1']:.2f} |")
    for r in rows:
        lines += ["", f"## {r['case']}: operators whose self CPU time differs most (one {r['s1']}-iteration "
                      "attack per iteration minus one bare pass)", "",
                  f"Profiled totals: bare {r['profiled_total_bare_s']:.2f} s, attack "
                  f"{r['profiled_total_attack_s']:.2f} s for {r['s1']} iteration(s).", "",
                  "| operator | bare s | attack s | extra per iteration s |", "|---|---|---|---|"]
        for o in r["ops"]:
            lines.append(f"| `{o['op']}` | {o['bare_s']:.3f} | {o['attack_s']:.3f} | "
                         f"{o['extra_per_iteration_s']:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--divisor", type=int, default=1, help="divide every side by this (a smoke test)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "real_scale")
    args = ap.parse_args()
    rows = [run_case(name, args.rounds, args.divisor, args.top) for name in args.cases]
    meta = {"device": device_name(), "torch": torch.__version__, "commit": commit_id(), "rounds": args.rounds,
            "divisor": args.divisor}
    out = args.out / "".join(ch if ch.isalnum() else "_" for ch in meta["device"]).strip("_")[:60]
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_scale_profile.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "real_scale_profile.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
