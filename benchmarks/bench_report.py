"""The HTML report (``segmint.write_report``) of the benchmark customers: plots and page.

8 segments (the seven personas, the first split by e-mail consent, joined on the customer id)
x 16 numeric features, with revenue, reach and the validation. The profile and the validation
are computed once, outside the timed region: the time is what the report adds beyond them
(the issue's target: at most 5 s on 10M customers). The report holds aggregates only, so its
work does not depend on ``--size``. No peer does this work: group ``report``, ours alone.
Quality: the page's size in bytes (lower; it is bounded by ``segmint.report.size_bound``).
"""
import os

import numpy as np
import pyarrow as pa
import pytest

from conftest import compare, record

pytest.importorskip("matplotlib")

FEATURES = ["recency_days", "frequency", "monetary", "avg_order_value", "tenure_days", "days_between_orders",
            "age", "income_k", "sessions_30d", "pages_per_session", "email_opens_90d", "email_clicks_90d",
            "cart_abandonments_90d", "discount_share", "returns_count", "support_tickets"]
PERSONAS = ["champions", "loyal regulars", "bargain hunters", "new customers", "at risk", "lapsed",
            "window shoppers"]
GROUP = f"report[8 segments x {len(FEATURES)} features]"


@pytest.fixture(scope="module")
def report_inputs(customers_files):
    import segmint
    from segmint.explain.profile import profile
    from segmint.explain.validate import validate

    path = customers_files["ipc"]
    with segmint.open(path) as src:
        ids = src.read(columns=["customer_id", "true_segment", "email_opt_in"])
    persona = np.asarray(ids.column("true_segment").to_numpy(zero_copy_only=False), dtype=np.int64)
    opted = np.asarray(ids.column("email_opt_in").to_numpy(zero_copy_only=False), dtype=bool)
    names = [f"{PERSONAS[0]} (opted in)", f"{PERSONAS[0]} (not opted in)"] + PERSONAS[1:]
    code = np.where(persona == 0, np.where(opted, 0, 1), persona + 1)
    segments = pa.table({"customer_id": ids.column("customer_id"),
                         "segment": pa.DictionaryArray.from_arrays(pa.array(code, pa.int32()), pa.array(names))})
    prof = profile(path, segments=segments, id_column="customer_id", features=FEATURES, categories=["region"],
                   revenue="monetary", reachable="email_opt_in")
    validation = validate(path, segments=segments, id_column="customer_id", features=FEATURES,
                          reachable="email_opt_in", profile=prof)
    return prof, validation


def test_write_report(benchmark, report_inputs, tmp_path):
    from segmint.report import size_bound, write_report

    prof, validation = report_inputs
    out = tmp_path / "report.html"
    write_report(out, prof, validation=validation)  # imports matplotlib and warms its font cache, untimed
    compare(benchmark, GROUP)
    benchmark.pedantic(write_report, args=(out, prof), kwargs={"validation": validation}, rounds=3, iterations=1)
    size = os.path.getsize(out)
    assert size <= size_bound(len(prof.segments), len(prof.features))
    record(benchmark, quality=("report bytes", size, "lower"), segments=len(prof.segments),
           features=len(prof.features), customers=int(prof.n_rows))
