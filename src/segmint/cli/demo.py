"""``segmint demo``: generate customers, fit a Segmenter, save, load, score, profile, and the RFM segments."""
import os
import time

from .output import Progress, note
from .paths import DEMO_FILES, DEMO_MARKER
from .tables import describe

DEMO_FEATURES = [
    {"column": "recency_days", "impute": "median", "indicator": True},
    {"column": "frequency", "log1p": True},
    {"column": "monetary", "log1p": True, "clip": [0.0, 0.995]},
    {"column": "avg_order_value", "log1p": True, "impute": "median"},
    {"column": "sessions_30d", "log1p": True},
    {"column": "email_opens_90d", "log1p": True},
    {"column": "discount_share", "impute": 0.0},
    {"column": "tenure_days", "scale": "robust"},
]
# what the customers look like (true_segment, the generator's answer, stays out of the profile)
PROFILE_FEATURES = ["recency_days", "frequency", "monetary", "avg_order_value", "tenure_days", "age",
                    "income_k", "sessions_30d", "pages_per_session", "email_opens_90d",
                    "cart_abandonments_90d", "discount_share", "returns_count", "support_tickets",
                    "email_opt_in", "sms_opt_in"]
DEMO_RULES = [
    ("no_consent", "not email_opt_in and not sms_opt_in"),
    ("never_bought", "frequency = 0"),
]


def demo(args):
    """``segmint demo``: the whole nightly job on synthetic data, in a new or earlier demo folder."""
    import tempfile

    if args.dir is not None:  # checked by check_demo_dir: new, empty or an earlier demo's
        import json

        from ..io.writers import write_text
        os.makedirs(args.dir, exist_ok=True)
        write_text(os.path.join(args.dir, DEMO_MARKER),
                   json.dumps({"format": "segmint-demo", "files": list(DEMO_FILES)}) + "\n")
        run_demo(args, args.dir)
        return
    with tempfile.TemporaryDirectory(prefix="segmint-demo-") as tmp:
        run_demo(args, tmp)


def run_demo(args, folder):
    """Generate, fit, save, load, score, RFM: the whole nightly job on synthetic data."""
    import numpy as np

    from .._parallel import get_num_threads
    from ..cluster import MiniBatchKMeans
    from ..datasets import DEFAULT_AS_OF, PERSONAS, write_customers
    from ..events import RFMScorer, rfm_segments
    from ..io import open as open_source
    from ..pipeline import Segmenter
    from ..persist import load
    from ..rules import RuleSet

    timings = []

    def timed(label, func):
        t0 = time.perf_counter()
        value = func()
        timings.append((label, time.perf_counter() - t0))
        return value

    data = os.path.join(folder, "customers.arrow")
    timed("generate", lambda: write_customers(data, args.customers, random_state=args.random_state))
    print(f"Generated {args.customers:,} synthetic customers (random state {args.random_state}, as of {DEFAULT_AS_OF}) "
          f"in {timings[-1][1]:.2f} s -> {data}")
    src = timed("open", lambda: open_source(data))
    print(f"Opened in {timings[-1][1] * 1e3:.1f} ms: " + describe(src).split("\n")[0])

    rules = RuleSet(DEMO_RULES, default="customers")
    model = Segmenter(features=DEMO_FEATURES, clusterer=MiniBatchKMeans(n_clusters=6, random_state=args.random_state),
                      rules=rules, id_column="customer_id", random_state=args.random_state)
    note(args, "fitting (the first run on a machine also compiles the kernels; segmint.warmup() does it ahead) ...")
    timed("fit", lambda: model.fit(src, as_of=DEFAULT_AS_OF))
    print(f"\nSegmenter: rules first ({', '.join(n for n, _ in DEMO_RULES)}), then MiniBatchKMeans(6) on "
          f"{model.n_rows_fit_:,} customers over {model.feature_spec_.n_features_out_} features; "
          f"fit in {timings[-1][1]:.2f} s")
    km = model.clusterer_
    X = model.transform(src)
    timed("predict", lambda: km.predict(X))
    print(f"MiniBatchKMeans: inertia {km.inertia_:,.0f} after {km.n_steps_} steps; predict of all "
          f"{X.shape[0]:,} customers ({X.shape[1]} {X.dtype} features) in {timings[-1][1] * 1e3:.1f} ms")
    del X
    model_path = os.path.join(folder, "model.seg")
    timed("save", lambda: model.save(model_path))
    loaded = timed("load", lambda: load(model_path))
    out = os.path.join(folder, "segments.parquet")
    with Progress(args, src.num_rows, "scoring") as bar:
        timed("score", lambda: loaded.score(src, out=out, as_of=DEFAULT_AS_OF, progress=bar))
    print(f"Saved the model ({os.path.getsize(model_path):,} bytes, no pickle), loaded it, scored every "
          f"customer in {timings[-1][1]:.2f} s -> {out}")

    scores = open_source(out).read(["segment_id", "distance"])
    seg = scores.column("segment_id").to_numpy()
    raw = src.read(["recency_days", "frequency", "monetary", "true_segment"])
    recency = raw.column("recency_days").to_numpy(zero_copy_only=False).astype(float)
    frequency = raw.column("frequency").to_numpy()
    monetary = raw.column("monetary").to_numpy()
    truth = raw.column("true_segment").to_numpy()
    print(f"\n{'id':>2} {'segment':<14} {'customers':>10} {'share':>6} {'recency':>8} {'orders':>7} "
          f"{'spend':>9}  main persona")
    for i, name in enumerate(loaded.segment_names_):
        mine = seg == i
        size = int(mine.sum())
        if not size:
            continue
        persona = np.bincount(truth[mine], minlength=len(PERSONAS))
        top = int(np.argmax(persona))
        rec = recency[mine]
        rec = f"{np.nanmedian(rec):8.0f}" if np.isfinite(rec).any() else f"{'-':>8}"
        print(f"{i:>2} {name:<14} {size:>10,} {size / len(seg):>6.1%} {rec} {np.median(frequency[mine]):>7.0f} "
              f"{np.median(monetary[mine]):>9,.0f}  {PERSONAS[top]} ({persona[top] / size:.0%})")

    from ..explain import profile
    prof = timed("profile", lambda: profile(src, segments=loaded, features=PROFILE_FEATURES, id_column="customer_id",
                                            revenue="monetary", reachable="email_opt_in", as_of=DEFAULT_AS_OF))
    print(f"\nWhat sets each segment apart (segmint.profile: one pass, {timings[-1][1]:.2f} s):")
    for name in loaded.segment_names_:
        if prof.descriptions.get(name) and prof.counts[prof.segments.index(name)]:
            print(f"  {name:<14} {prof.descriptions[name]}")

    table = src.read(["customer_id", "recency_days", "frequency", "monetary"])
    scored = timed("rfm scores", lambda: RFMScorer().fit_transform(table))
    counts = timed("rfm rules", lambda: rfm_segments().counts(scored))
    print("\nRFM: scores 1..5 by quantiles, then the named RFM segments (a built-in rule set):")
    for name, matched, share in zip(*(counts.column(c).to_pylist() for c in ("segment", "matched", "share"))):
        if matched:
            print(f"  {name:<22} {matched:>10,} {share:6.1%}")
    print("\nTimings: " + ", ".join(f"{label} {t:.2f} s" for label, t in timings)
          + f" ({get_num_threads()} threads)")
    src.close()
