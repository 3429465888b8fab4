"""Issue 16, items 1-2: rows of `bench/out_of_the_box.py` with the plain and the
sticking-the-landing gradient of the path KL (`langevin_uq.sampler.LangevinSampler.simulate`,
``sticking``; the library's default is sticking).

    .venv/bin/python bench/sticking_vs_plain.py --rows 1,9 [--estimators plain,sticking]
"""

import argparse
import dataclasses

import out_of_the_box

from langevin_uq.methods import ls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", required=True)
    p.add_argument("--estimators", default="plain,sticking")
    a = p.parse_args()
    objective = ls.LangevinMethod.objective
    for estimator in a.estimators.split(","):

        def chosen(self, problem, record, sticking=estimator == "sticking"):
            return dataclasses.replace(objective(self, problem, record), sticking=sticking)

        ls.LangevinMethod.objective = chosen
        print(f"gradient of the path KL: {estimator}", flush=True)
        out_of_the_box.main({int(r) for r in a.rows.split(",")})


if __name__ == "__main__":
    main()
