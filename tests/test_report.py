"""Plots and the HTML report (segmint.report): sizes, escaping, self-containment, bounds, the CLI."""
import base64
import gc
import html.parser
import io
import os
import re
import subprocess
import sys
import time
import weakref

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("matplotlib")

from segmint.errors import MissingExtraError, OutputError, ParameterError  # noqa: E402
from segmint.explain.profile import profile  # noqa: E402
from segmint.explain.sweep import Sweep, sweep_k  # noqa: E402
from segmint.explain.validate import validate  # noqa: E402
from segmint.report import plots, size_bound, write_report  # noqa: E402
from segmint.report.html import render  # noqa: E402

HOSTILE = "<script>alert('x')</script> & \"$x^2$\" \\frac{"
NAMES = ["champions", "loyal regulars", "bargain hunters", "new", "at risk", "lapsed", HOSTILE]  # 7 personas
FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "age", "income_k", "sessions_30d",
            "discount_share", "email_opens_90d", "returns_count"]


# -- data: the real profile, validation and sweep of a small synthetic base ---------------------------
@pytest.fixture(scope="module")
def customers():
    from segmint.datasets import make_customers

    table = make_customers(12_000, random_state=1)
    codes = np.asarray(table.column("true_segment").to_numpy(zero_copy_only=False), dtype=np.int64)
    names = pa.array([NAMES[c % len(NAMES)] for c in codes]).dictionary_encode()
    return table.append_column("segment", names)


@pytest.fixture(scope="module")
def prof(customers):
    return profile(customers, segments="segment", features=FEATURES, categories=["region", "channel"],
                   revenue="monetary", reachable="email_opt_in")


@pytest.fixture(scope="module")
def validation(customers, prof):
    return validate(customers, segments="segment", features=FEATURES, reachable="email_opt_in",
                    profile=prof, n_bootstrap=5, sample_size=3_000)


@pytest.fixture(scope="module")
def sweep(customers):
    spec = [{"column": c, "impute": "median"} for c in ("frequency", "monetary", "tenure_days")]
    return sweep_k(customers, features=spec, ks=range(2, 7), n_seeds=2, sample_size=1_500, n_bootstrap=20)


@pytest.fixture(scope="module")
def wide():
    """60 segments x 40 features: what must stay legible and bounded."""
    rng = np.random.default_rng(3)
    n = 3_000
    columns = {f"feature number {j} with a rather long column name": rng.normal(j, 1 + j % 3, n)
               for j in range(40)}
    seg = [f"segment {i % 60} of a long list of segments with names" for i in range(n)]
    columns["segment"] = pa.array(seg).dictionary_encode()
    return profile(pa.table(columns), segments="segment")


def _png_shape(data):
    import matplotlib.image as mpimg
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(data), format="png").shape


def _expected_pixels(fig):
    w, h = fig.get_size_inches() * fig.dpi
    return int(round(h)), int(round(w))


# -- plots -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["sizes", "differences", "sweep"])
def test_each_plot_is_a_png_of_exactly_its_figure_size_times_its_dpi(which, prof, sweep, tmp_path):
    fig = {"sizes": lambda: plots.plot_sizes(prof), "differences": lambda: plots.plot_differences(prof),
           "sweep": lambda: plots.plot_sweep(sweep)}[which]()
    path = tmp_path / f"{which}.png"
    assert plots.save_png(fig, path) == path
    shape = _png_shape(path.read_bytes())
    assert shape[:2] == _expected_pixels(fig)
    assert shape[2] in (3, 4)
    pixels = __import__("matplotlib.image", fromlist=["imread"]).imread(path)
    assert pixels[..., :3].std() > 0.05  # drawn, not blank
    assert len(os.listdir(tmp_path)) == 1  # no temporary file left beside it


def test_the_sizes_plot_has_revenue_bars_only_when_the_profile_has_revenue(customers, prof):
    with_revenue = plots.plot_sizes(prof)
    plain = plots.plot_sizes(profile(customers, segments="segment", features=FEATURES[:3]))
    assert len(with_revenue.axes[0].patches) == 2 * len(prof.segments)
    assert len(plain.axes[0].patches) == len(prof.segments)
    labels = [t.get_text() for t in with_revenue.axes[0].get_yticklabels()]
    assert labels == [plots.shorten(s) for s in prof.segments]
    assert HOSTILE in prof.segments


def test_the_heatmap_is_centred_at_zero_clipped_at_two_and_annotated_with_the_differences(prof):
    fig = plots.plot_differences(prof)
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.norm.vmin == -2 and image.norm.vmax == 2
    assert np.nanmax(np.abs(image.get_array())) <= 2
    texts = {t.get_text() for t in ax.texts}
    finite = prof.std_diff[np.isfinite(prof.std_diff)]
    assert {plots.cell_text(v) for v in finite} <= texts
    assert not any(t.startswith("-0.0") or t.startswith("+0.0") for t in texts)
    assert [t.get_text() for t in ax.get_xticklabels()] == [plots.shorten(f) for f in prof.features]


def test_the_sweep_plot_marks_the_suggested_k_or_says_there_is_no_clear_elbow(sweep):
    fig = plots.plot_sweep(sweep)
    title = fig._suptitle.get_text()
    if sweep.suggested_k is None:
        assert "no clear elbow" in title
    else:
        assert f"k = {sweep.suggested_k}" in title
        assert all(any(line.get_xdata()[0] == sweep.suggested_k for line in ax.lines if line.get_linestyle() == "--")
                   for ax in fig.axes)
    data = sweep.to_dict()
    data.update(suggested_k=None, elbow={"kneedle": None, "chord": None, "message": "inertia falls evenly"})
    none = plots.plot_sweep(Sweep(data))
    assert "no clear elbow" in none._suptitle.get_text()
    assert not any(line.get_linestyle() == "--" for ax in none.axes for line in ax.lines)


def test_sixty_segments_by_forty_features_stay_legible_and_bounded(wide, tmp_path):
    cap = plots.MAX_INCHES * plots.DPI
    sizes, heatmap = plots.plot_sizes(wide), plots.plot_differences(wide)
    for fig in (sizes, heatmap):
        data = plots.png_bytes(fig)
        h, w = _png_shape(data)[:2]
        assert (h, w) == _expected_pixels(fig) and h <= cap and w <= cap
        assert len(data) < 1_500_000
    names = sizes.axes[0].get_yticklabels() + heatmap.axes[0].get_yticklabels() + heatmap.axes[0].get_xticklabels()
    assert len(names) == 60 + 60 + 40
    for label in names:  # every name here is longer than the limit: cut, with an ellipsis
        assert len(label.get_text()) == plots.LABEL_CHARS and label.get_text().endswith("\u2026")
        assert label.get_fontsize() >= 4
    assert not plots.plot_differences(wide).axes[0].texts  # 2,400 cells: no numbers printed


def test_hundreds_of_segments_thin_their_labels_instead_of_overlapping_them():
    n_seg = 400
    table = pa.table({"segment": pa.array([f"s{i % n_seg:03d}" for i in range(4 * n_seg)]).dictionary_encode(),
                      "x": np.arange(4.0 * n_seg)})
    p = profile(table, segments="segment")
    fig = plots.plot_sizes(p)
    labels = fig.axes[0].get_yticklabels()
    assert 10 < len(labels) < n_seg
    assert all(label.get_fontsize() >= plots.MIN_FONT for label in labels)
    height_pt = fig.get_size_inches()[1] * 72
    assert len(labels) * plots.MIN_FONT < height_pt  # they fit one above the other
    assert not fig.axes[0].texts  # no value beside each bar: no room
    assert _png_shape(plots.png_bytes(fig))[:2] == _expected_pixels(fig)


def test_shorten_keeps_a_label_on_one_line_and_within_its_length():
    assert plots.shorten("a\nb\t c\x95") == "a b c\ufffd"
    assert plots.shorten("x" * 40) == "x" * (plots.LABEL_CHARS - 1) + "\u2026"
    assert plots.shorten("short") == "short"


def test_names_that_look_like_mathtext_are_drawn_as_text():
    table = pa.table({"segment": pa.array(["$x^2$", "a_b \\frac{", "$", "ok"] * 25).dictionary_encode(),
                      "$weird^col": np.arange(100.0)})
    prof = profile(table, segments="segment")
    for fig in (plots.plot_sizes(prof), plots.plot_differences(prof)):
        plots.png_bytes(fig)  # mathtext would raise on "\frac{" and "$"
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert set(labels) == {"$x^2$", "a_b \\frac{", "$", "ok"}


def test_figures_are_freed_after_use_and_never_held_by_pyplot(prof, sweep):
    for draw in (lambda: plots.plot_sizes(prof), lambda: plots.plot_differences(prof),
                 lambda: plots.plot_sweep(sweep)):
        fig = draw()
        plots.png_bytes(fig)
        ref = weakref.ref(fig)
        del fig
        gc.collect()  # a figure is a cycle (figure, canvas, axes): the cycle collector frees it
        assert ref() is None, "a figure outlived its last reference"
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()


def test_without_matplotlib_plotting_says_which_extra_to_install(prof, monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=re.escape('pip install "segmint[plot]"')):
        plots.plot_sizes(prof)
    with pytest.raises(MissingExtraError, match=r"segmint\[plot\]"):
        write_report(tmp_path / "r.html", prof)
    assert not (tmp_path / "r.html").exists()


def test_importing_segmint_and_its_report_module_loads_no_plotting_library():
    code = ("import sys, segmint, segmint.report, segmint.report.plots; "
            "print([m for m in ('matplotlib', 'pandas', 'playwright') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the HTML report -------------------------------------------------------------------------------
class _Page(html.parser.HTMLParser):
    """Tags, attributes and text of a page (what a browser would take from it)."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)

    def handle_data(self, data):
        self.text.append(data)


def _parse(text):
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def report_text(prof, validation, sweep, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert write_report(path, prof, validation=validation, sweep=sweep, title="Q3 <segments>") == path
    return path.read_text(encoding="utf-8")


def test_the_report_is_one_self_contained_page_without_scripts_or_network(report_text):
    page = _parse(report_text)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for tag, key, value in page.attrs:
        if key in ("src", "href"):
            assert value.startswith("data:image/png;base64,"), (tag, key, value[:60])
        assert not key.startswith("on"), (tag, key)
    assert not re.search(r"https?://", report_text)
    assert "url(" not in report_text  # no external font or image from the CSS
    images = [v for t, k, v in page.attrs if t == "img" and k == "src"]
    assert len(images) == 3
    for src in images:
        _png_shape(base64.b64decode(src.split(",", 1)[1]))


def test_every_user_string_is_escaped_and_shown_as_text(report_text, prof):
    page = _parse(report_text)
    text = "".join(page.text)
    for name in prof.segments:
        assert name in text
    assert HOSTILE in text
    assert "<script>" not in report_text
    assert html.escape(HOSTILE, quote=True) in report_text
    assert "Q3 <segments>" in text and "<segments>" not in report_text


def test_the_report_holds_the_summary_traits_verdicts_findings_and_the_sweep(report_text, prof, validation, sweep):
    text = " ".join(_parse(report_text).text)
    for description in prof.descriptions.values():
        assert description in text
    for name in prof.segments:
        for _, _, _, words in prof.traits(name, top=3):
            assert words in text
    for finding in validation.findings:
        assert finding in text
    for verdict in ("measurable", "substantial", "accessible", "distinct"):
        assert verdict in text
    assert (f"Suggested k = {sweep.suggested_k}" if sweep.suggested_k is not None else "No clear elbow") in text
    assert f"{prof.n_rows:,} customers" in text
    assert re.search(r"generated \d{4}-\d\d-\d\d", text)


def test_a_report_without_validation_or_sweep_leaves_their_sections_out(prof, tmp_path):
    text = write_report(tmp_path / "r.html", prof).read_text(encoding="utf-8")
    assert "<h2>Validation</h2>" not in text and "<h2>Choosing k</h2>" not in text
    assert text.count("<img ") == 2


def test_a_profile_without_numeric_features_or_with_constant_ones_still_makes_a_report(tmp_path):
    t = pa.table({"segment": pa.array(["a", "b", "c"] * 20).dictionary_encode(),
                  "region": pa.array(["x", "y", "z", "x"] * 15).dictionary_encode()})
    text = write_report(tmp_path / "a.html", profile(t, segments="segment")).read_text(encoding="utf-8")
    assert text.count("<img ") == 1  # sizes only: no heatmap without numeric features
    t = t.append_column("constant", pa.array(np.ones(60))).append_column("empty", pa.nulls(60, pa.float64()))
    p = profile(t, segments="segment")
    assert np.isnan(p.std_diff).all()
    text = write_report(tmp_path / "b.html", p).read_text(encoding="utf-8")
    assert text.count("<img ") == 2  # the heatmap draws its cells grey


def test_sixty_segments_by_forty_features_stay_under_the_stated_size_bound(wide, tmp_path):
    t0 = time.perf_counter()
    path = write_report(tmp_path / "wide.html", wide)
    assert os.path.getsize(path) <= size_bound(60, 40)
    assert os.path.getsize(path) < 3_000_000  # the bound is a worst case (names of 200 characters)
    assert time.perf_counter() - t0 < 30


def test_the_report_size_does_not_depend_on_the_number_of_customers(customers, tmp_path):
    sizes = []
    for n in (1_000, 12_000):
        p = profile(customers.slice(0, n), segments="segment", features=FEATURES)
        sizes.append(os.path.getsize(write_report(tmp_path / f"r{n}.html", p)))
        assert sizes[-1] <= size_bound(len(p.segments), len(p.features))
    assert abs(sizes[0] - sizes[1]) < 0.2 * max(sizes)


def test_write_report_takes_well_under_five_seconds_for_eight_segments_by_sixteen_features(tmp_path):
    rng = np.random.default_rng(0)
    columns = {f"f{j}": rng.gamma(2.0, 10.0 + j, 4_000) for j in range(16)}
    columns["segment"] = pa.array([f"s{i % 8}" for i in range(4_000)]).dictionary_encode()
    p = profile(pa.table(columns), segments="segment")
    write_report(tmp_path / "warm.html", p)
    t0 = time.perf_counter()
    write_report(tmp_path / "r.html", p)
    assert time.perf_counter() - t0 < 5


def test_the_report_is_never_written_over_an_input_nor_left_half_written(prof, tmp_path, monkeypatch):
    data = tmp_path / "customers.arrow"
    data.write_bytes(b"precious")
    with pytest.raises(OutputError, match="input"):
        write_report(data, prof, inputs=[data])
    assert data.read_bytes() == b"precious"
    with pytest.raises(OutputError):
        write_report(tmp_path / "missing" / "r.html", prof)
    with pytest.raises(ParameterError, match="title"):
        write_report(tmp_path / "r.html", prof, title=3)
    target = tmp_path / "r.html"
    target.write_text("old")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_differences", fail)
    with pytest.raises(KeyboardInterrupt):
        write_report(target, prof)
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["customers.arrow", "r.html"]


def test_save_png_refuses_an_input_and_leaves_it_unchanged(prof, tmp_path):
    data = tmp_path / "data.png"
    data.write_bytes(b"keep")
    with pytest.raises(OutputError):
        plots.save_png(plots.plot_sizes(prof), data, inputs=[data])
    assert data.read_bytes() == b"keep"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), min_size=1,
                        max_size=40), min_size=1, max_size=5, unique=True))
def test_any_segment_names_reach_the_page_as_the_same_text(names):
    n = 10 * len(names)
    table = pa.table({"segment": pa.array([names[i % len(names)] for i in range(n)]).dictionary_encode(),
                      "x": np.arange(n, dtype=np.float64)})
    p = profile(table, segments="segment")
    page = _parse(render(p))
    for name in p.segments:
        assert name in page.text  # one text node: the name cell of the summary, exactly the name
    for label in plots.plot_sizes(p).axes[0].get_yticklabels():
        assert "\n" not in label.get_text() and len(label.get_text()) <= plots.LABEL_CHARS
    assert "script" not in page.tags and page.tags.count("style") == 1


# -- the command line ------------------------------------------------------------------------------
def test_the_report_command_writes_the_page_and_says_where(customers, tmp_path, capsys):
    from segmint.cli import main
    from segmint.io import write_table

    data = tmp_path / "customers.arrow"
    write_table(customers, data)
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(data), "--segments", "segment", "--features", ",".join(FEATURES[:4]),
                 "--revenue", "monetary", "--reachable", "email_opt_in", "-o", str(out)])
    assert code in (0, None)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and str(out) in printed[0]
    text = out.read_text(encoding="utf-8")
    assert "<h2>Validation</h2>" in text and "<h2>Choosing k</h2>" not in text
    assert html.escape(HOSTILE, quote=True) in text

    code = main(["--quiet", "report", str(data), "--segments", "segment", "--no-validate", "-o", str(out)])
    assert code in (0, None)
    assert "<h2>Validation</h2>" not in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("argv, words", [
    (["--segments", "segment", "-o", "{data}"], "input"),
    (["--segments", "segment", "-o", "{tmp}/report.txt"], "HTML"),
    (["--segments", "no_such_column", "-o", "{tmp}/r.html"], "no_such_column"),
    (["--segments", "segment", "--features", " , ", "-o", "{tmp}/r.html"], "--features"),
])
def test_report_command_errors_are_one_line_naming_the_problem(argv, words, customers, tmp_path, capsys):
    from segmint.cli import main
    from segmint.io import write_table

    data = tmp_path / "customers.arrow"
    write_table(customers.slice(0, 2_000), data)
    before = data.read_bytes()
    argv = [a.format(data=data, tmp=tmp_path) for a in argv]
    code = main(["--quiet", "report", str(data)] + argv)
    err = capsys.readouterr().err
    assert code == 1
    assert words in err and "Traceback" not in err
    assert data.read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith((".html", ".txt"))]


# -- review fixes (issue 14): model and rule files, inputs, sweep specs, long names, refunds -------
def _small_customers(tmp_path, n=3_000):
    """A small customer file with an id column: (path, table)."""
    from segmint.datasets import make_customers
    from segmint.io import write_table

    table = make_customers(n, random_state=2)
    path = tmp_path / "customers.arrow"
    write_table(table, path)
    return path, table


def test_the_report_command_takes_a_saved_segmenter_and_profiles_without_its_id_column(tmp_path, capsys):
    from segmint import KMeans, Segmenter
    from segmint.cli import main

    data, table = _small_customers(tmp_path)
    model = Segmenter(["frequency", "monetary", "tenure_days"], id_column="customer_id",
                      clusterer=KMeans(n_clusters=3, random_state=0, n_init=1)).fit(table)
    model.save(tmp_path / "model.seg")
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(data), "--segments", str(tmp_path / "model.seg"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code in (0, None), err
    text = out.read_text(encoding="utf-8")
    assert "<h2>Validation</h2>" in text
    assert "customer_id" not in text  # the model's id column is not a feature to profile
    assert text.count("<img ") == 2


def test_the_report_command_takes_a_rule_file(tmp_path, capsys):
    from segmint import RuleSet
    from segmint.cli import main

    data, _ = _small_customers(tmp_path)
    RuleSet([("frequent", "frequency >= 5"), ("big spenders", "monetary >= 500")],
            default="the rest").save(tmp_path / "rules.json")
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(data), "--segments", str(tmp_path / "rules.json"),
                 "--id-column", "customer_id", "-o", str(out)])
    assert code in (0, None), capsys.readouterr().err
    text = _parse(out.read_text(encoding="utf-8")).text
    for name in ("frequent", "big spenders", "the rest"):
        assert name in text


def test_the_report_command_takes_a_sweep_spec_document_as_sweep_does(tmp_path, capsys):
    import json

    from segmint.cli import main

    data, _ = _small_customers(tmp_path, 1_500)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"features": [{"column": "frequency", "log1p": True}, "monetary"]}))
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(data), "--segments", "region", "--no-validate",
                 "--sweep-features", str(spec), "-o", str(out)])
    assert code in (0, None), capsys.readouterr().err
    text = " ".join(_parse(out.read_text(encoding="utf-8")).text)
    assert "<h2>Choosing k</h2>" in out.read_text(encoding="utf-8")
    assert "Clustered on 2 features" in text and "monetary" in text


@pytest.mark.parametrize("spec", ['{"features": ["frequency", "no_such_col"]}', "frequency,no_such_col"])
def test_a_sweep_spec_naming_an_unknown_column_fails_before_the_profile_pass(spec, tmp_path, capsys, monkeypatch):
    from segmint.cli import main

    profile_module = sys.modules["segmint.explain.profile"]  # the module: segmint.explain.profile is the function
    data, _ = _small_customers(tmp_path, 500)
    if spec.startswith("{"):
        (tmp_path / "spec.json").write_text(spec)
        spec = str(tmp_path / "spec.json")

    def no_pass(*args, **kwargs):
        raise AssertionError("the profile pass ran before the sweep spec was checked")

    monkeypatch.setattr(profile_module, "profile", no_pass)
    code = main(["--quiet", "report", str(data), "--segments", "region", "--sweep-features", spec,
                 "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 1 and "no_such_col" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_the_report_is_never_written_over_the_file_the_profile_read(customers, tmp_path):
    from segmint.io import write_table

    data = tmp_path / "customers.arrow"
    write_table(customers.slice(0, 2_000), data)
    before = data.read_bytes()
    p = profile(str(data), segments="segment", features=FEATURES[:3])
    with pytest.raises(OutputError):
        write_report(data, p)
    with pytest.raises(OutputError):
        plots.save_png(plots.plot_sizes(p), data)  # the figure remembers what its profile read
    assert data.read_bytes() == before


def test_names_of_a_hundred_thousand_characters_are_cut_and_the_size_bound_holds(tmp_path):
    long_a, long_b = "a" * 100_000, "b" * 99_999 + "\u00e9"
    feature = "f" * 100_000
    t = pa.table({"segment": pa.array([long_a, long_b, "short"] * 200).dictionary_encode(),
                  feature: np.arange(600.0) % 7, "x": np.arange(600.0)})
    p = profile(t, segments="segment")
    v = validate(t, segments="segment", profile=p, min_count=0, n_bootstrap=3)
    path = write_report(tmp_path / "long.html", p, validation=v, title="t" * 100_000)
    size = os.path.getsize(path)
    assert size <= size_bound(len(p.segments), len(p.features))
    assert size < 2_500_000
    text = path.read_text(encoding="utf-8")
    page = _parse(text)
    assert "short" in page.text
    shown = [s for s in page.text if s.startswith("aaa")]  # the name, and findings that quote it
    assert shown and all(len(s) <= 600 and s.endswith("\u2026") for s in shown)
    assert any(len(s) == 200 for s in shown)  # the name cells: 199 characters and an ellipsis
    assert any(k == "title" and v.startswith("aaa") for _, k, v in page.attrs)


def test_a_report_over_its_bound_is_refused_not_written(prof, tmp_path, monkeypatch):
    import segmint.report.html as report_html

    monkeypatch.setattr(report_html, "size_bound", lambda *args, **kwargs: 1_000)
    with pytest.raises(OutputError, match="bound"):
        write_report(tmp_path / "r.html", prof)
    assert not os.listdir(tmp_path)


def test_negative_revenue_shares_are_drawn_left_of_zero_with_their_labels_on_the_left():
    n = 300
    seg = pa.array(["buyers", "refunders", "others"] * (n // 3)).dictionary_encode()
    money = np.tile([100.0, -40.0, 10.0], n // 3)  # refunds: a segment with negative revenue
    p = profile(pa.table({"segment": seg, "money": money}), segments="segment", revenue="money")
    shares = dict(zip(p.summary.column("segment").to_pylist(), p.summary.column("revenue_share").to_pylist()))
    assert shares["refunders"] < 0
    fig = plots.plot_sizes(p)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert low < shares["refunders"] < 0 < high
    negative = [t for t in ax.texts if t.get_text().strip().startswith("-")]
    assert negative and all(t.get_ha() == "right" for t in negative)
    positive = [t for t in ax.texts if not t.get_text().strip().startswith("-")]
    assert all(t.get_ha() == "left" for t in positive)
    shots = os.environ.get("SEGMINT_REPORT_SHOTS")
    if shots:
        plots.save_png(fig, os.path.join(shots, "sizes_refunds.png"))


@pytest.mark.parametrize("value, text", [(3646, "3,650"), (3650, "3,650"), (0.7548, "0.755"), (0.747, "0.747"),
                                         (1_234_567, "1,230,000"), (999.6, "1,000"), (-1234.5, "-1,230"),
                                         (12.345, "12.3"), (0, "0"), (float("nan"), "-")])
def test_every_figure_has_three_significant_digits_and_thousands_separators(value, text):
    from segmint.report.html import figure_text
    assert figure_text(value) == text


def test_the_choosing_k_section_names_the_features_and_which_way_each_metric_is_better(sweep, tmp_path, prof):
    from segmint.report.html import silhouette_sampled

    text = write_report(tmp_path / "r.html", prof, sweep=sweep).read_text(encoding="utf-8")
    words = " ".join(_parse(text).text)
    assert f"Clustered on {len(sweep.features)} features" in words
    for feature in sweep.features:
        assert feature in words
    assert "Calinski-Harabasz (higher is better)" in words and "Davies-Bouldin (lower is better)" in words
    assert "near 1" in words
    assert silhouette_sampled(sweep) == (sweep.to_dict()["sample_size"] < sweep.n_rows)
    data = sweep.to_dict()
    data["sample_size"] = sweep.n_rows  # the silhouette on every row: "sampled" must not be said
    everything = Sweep(data)
    assert not silhouette_sampled(everything)
    words = " ".join(_parse(write_report(tmp_path / "s.html", prof, sweep=everything)
                            .read_text(encoding="utf-8")).text)
    assert "sample" not in words.split("Choosing k", 1)[1].split("Made by")[0]
    assert "sampled" not in plots.plot_sweep(everything).axes[3].get_title()


@pytest.mark.parametrize("kwargs, words", [
    ({"profile": {"a": 1}}, "profile= must be a segmint.Profile"),
    ({"sweep": "PROFILE"}, "sweep= must be a segmint.Sweep"),
    ({"validation": "PROFILE"}, "validation= must be a segmint.Validation"),
    ({"title": 3}, "title= must be a string"),
])
def test_wrong_arguments_to_write_report_name_the_argument_and_the_type(kwargs, words, prof, tmp_path):
    args = {"profile": prof}
    args.update({k: prof if v == "PROFILE" else v for k, v in kwargs.items()})
    p = args.pop("profile")
    with pytest.raises(ParameterError, match=re.escape(words)):
        write_report(tmp_path / "r.html", p, **args)
    assert not os.listdir(tmp_path)


def test_the_heatmap_says_what_a_grey_cell_means_only_when_there_is_one():
    t = pa.table({"segment": pa.array(["a", "b", "c"] * 20).dictionary_encode(), "x": np.arange(60.0)})
    assert plots.plot_differences(profile(t, segments="segment")).axes[0].get_legend() is None
    t = t.append_column("constant", pa.array(np.ones(60)))
    legend = plots.plot_differences(profile(t, segments="segment")).axes[0].get_legend()
    assert [x.get_text() for x in legend.get_texts()] == ["grey: no value"]


def test_validation_columns_never_checked_are_left_out_and_the_verdicts_come_first(validation):
    from segmint.report.html import _FIGURES, _validation

    text = _validation(validation)
    first, rest = text.split("</table>", 1)
    for verdict in ("measurable", "substantial", "accessible", "distinct"):
        assert f">{verdict}</th>" in first
    empty = [c for c in validation.table.column_names
             if all(v in (None, "not checked") for v in validation.table.column(c).to_pylist())]
    assert {"jaccard", "stability"} <= set(empty)  # a column of segments: no bootstrap, no stability
    assert ">stability</th>" not in text and _FIGURES["jaccard"] not in text
    assert "Not checked for these segments: stability" in text
    assert _FIGURES["separation"] in rest and _FIGURES["separation"] not in first  # figures: own table


def test_neither_the_report_nor_a_sweep_plot_is_written_over_the_file_the_sweep_read(prof, tmp_path):
    data, _ = _small_customers(tmp_path, 400)
    before = data.read_bytes()
    s = sweep_k(str(data), features=["frequency", "monetary"], ks=[2, 3], n_seeds=1, sample_size=200, n_bootstrap=5)
    assert str(data) in s.inputs
    with pytest.raises(OutputError):
        write_report(data, prof, sweep=s)
    with pytest.raises(OutputError):
        plots.save_png(plots.plot_sweep(s), data)
    assert data.read_bytes() == before


# -- drift (issue 15): the migration heatmap, the drift section, report --previous ----------------
def _snapshots(names, n=4_000, seed=0, stay=0.7):
    """Two (customer_id, segment) snapshots with unsorted ids, 10% departed and 10% new."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(10 * n, 11 * n + n // 10))
    before = rng.integers(0, len(names), n)
    after = np.where(rng.random(n) < stay, before, rng.integers(0, len(names), n))
    previous = pa.table({"customer_id": ids[:n], "segment": pa.array([names[i] for i in before])})
    keep = slice(n // 10, n)  # the first tenth departed; n // 10 new ids come after
    current_ids = np.concatenate([ids[keep], ids[n:]])
    current_seg = np.concatenate([after[keep], rng.integers(0, len(names), n // 10)])
    current = pa.table({"customer_id": current_ids, "segment": pa.array([names[i] for i in current_seg])})
    return previous, current


@pytest.fixture(scope="module")
def snapshot_drift():
    from segmint.monitor.compare import drift

    previous, current = _snapshots(NAMES)
    return drift(current, previous=previous, id_column="customer_id")


@pytest.fixture(scope="module")
def model_drift(customers):
    """A model fitted on the base, then the base a little later: monetary up, 1,000 customers gone,
    with the previous snapshot (the fit's scores): every view of a drift."""
    from segmint import KMeans, Segmenter
    from segmint.monitor.compare import drift

    model = Segmenter(["frequency", "monetary", "tenure_days", {"column": "region", "one_hot": True}],
                      id_column="customer_id", clusterer=KMeans(n_clusters=4, random_state=0, n_init=1))
    model.fit(customers.slice(0, 8_000)).rename({0: HOSTILE})
    previous = model.score(customers.slice(0, 8_000)).select(["customer_id", "segment"])
    later = customers.slice(1_000, 7_000)
    later = later.set_column(later.schema.get_field_index("monetary"), "monetary",
                             pa.array(np.asarray(later.column("monetary")) * 1.5))
    return drift(later, model=model, previous=previous)


def _row_shares(counts):
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)


def test_the_migration_heatmap_draws_row_shares_previous_by_current_with_new_and_departed(snapshot_drift, tmp_path):
    m = snapshot_drift.migration
    fig = plots.migration_heatmap(m)
    ax = fig.axes[0]
    drawn = np.ma.filled(ax.images[0].get_array().astype(np.float64), np.nan)
    assert drawn.shape == m.matrix.shape
    np.testing.assert_allclose(drawn, _row_shares(m.matrix), rtol=1e-12)
    full = m.matrix.sum(axis=1) > 0
    np.testing.assert_allclose(np.nansum(drawn[full], axis=1), 1.0)  # each row adds up to 100%
    assert ax.images[0].norm.vmin == 0 and ax.images[0].norm.vmax == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == [plots.shorten(n) for n in m.from_names]
    assert [t.get_text() for t in ax.get_xticklabels()] == [plots.shorten(n) for n in m.to_names]
    assert m.from_names[-1] == "(new)" and m.to_names[-1] == "(departed)"
    assert ax.get_ylabel() == "previous segment" and ax.get_xlabel() == "current segment"
    texts = [t.get_text() for t in ax.texts]  # 7 segments: every non-zero cell says its share
    assert sorted(texts) == sorted(plots.share_text(v) for v in drawn[m.matrix > 0])
    assert len(ax.patches) == len(NAMES)  # the diagonal, "stayed", outlined
    path = plots.save_png(fig, tmp_path / "migration.png")
    shape = _png_shape(path.read_bytes())
    assert shape[:2] == _expected_pixels(fig)
    assert __import__("matplotlib.image", fromlist=["imread"]).imread(path)[..., :3].std() > 0.05
    shots = os.environ.get("SEGMINT_REPORT_SHOTS")
    if shots:
        plots.save_png(fig, os.path.join(shots, "migration_heatmap.png"))


def test_forty_five_segments_draw_the_largest_thirty_and_pool_the_rest_without_cell_numbers():
    from segmint.monitor.migration import migration

    names = [f"a segment with a long name number {i}" for i in range(45)]
    rng = np.random.default_rng(5)
    weights = 1.0 / np.arange(1, 46)
    n = 9_000
    ids = np.arange(n)
    prev = pa.table({"customer_id": ids, "segment": [names[i] for i in rng.choice(45, n, p=weights / weights.sum())]})
    cur = pa.table({"customer_id": ids[500:] + 300,
                    "segment": [names[i] for i in rng.choice(45, n - 500, p=weights / weights.sum())]})
    m = migration(prev, cur, id_column="customer_id")
    counts, rows, cols, pooled = plots.migration_view(m)
    assert pooled == 15 and counts.shape == (32, 32)
    assert rows[-2] == cols[-2] == "(15 other segments)" and rows[-1] == "(new)" and cols[-1] == "(departed)"
    assert counts.sum() == m.matrix.sum()
    size = m.matrix[:-1].sum(axis=1) + m.matrix[:, :-1].sum(axis=0)
    kept = sorted(np.argsort(-size, kind="stable")[:30])
    assert rows[:30] == [m.from_names[i] for i in kept]  # the largest, in the migration's order
    np.testing.assert_array_equal(counts[:30, :].sum(axis=1), m.matrix[kept].sum(axis=1))  # rows unchanged
    fig = plots.migration_heatmap(m)
    ax = fig.axes[0]
    assert not ax.texts and "15 smaller ones pooled" in ax.get_title(loc="left")
    h, w = _png_shape(plots.png_bytes(fig))[:2]
    assert max(h, w) <= plots.MAX_INCHES * plots.DPI
    assert all(len(t.get_text()) <= plots.LABEL_CHARS for t in ax.get_yticklabels())


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(0, 50), min_size=n + 1, max_size=n + 1), min_size=n + 1, max_size=n + 1),
    st.integers(1, 6))))
def test_pooling_the_small_segments_matches_a_plain_loop(case):
    from segmint.monitor.migration import Migration

    rows, limit = case
    matrix = np.array(rows, dtype=np.int64)
    matrix[-1, -1] = 0
    n = matrix.shape[0] - 1
    m = Migration(matrix, [f"s{i}" for i in range(n)], [f"s{i}" for i in range(n)], id_column="id")
    counts, from_names, to_names, pooled = plots.migration_view(m, limit)
    # the twin: a group label per segment, then a sum over every cell
    size = [matrix[i, :].sum() + matrix[:, i].sum() for i in range(n)]  # previous + current customers
    big = sorted(sorted(range(n), key=lambda i: (-size[i], i))[:limit]) if n > limit else list(range(n))
    group = {i: big.index(i) for i in big}
    other = len(big) if n > limit else None
    expected = np.zeros((len(big) + (other is not None) + 1,) * 2, dtype=np.int64)
    for i in range(n + 1):
        for j in range(n + 1):
            gi = len(expected) - 1 if i == n else group.get(i, other)
            gj = len(expected) - 1 if j == n else group.get(j, other)
            expected[gi, gj] += matrix[i, j]
    np.testing.assert_array_equal(counts, expected)
    assert pooled == (n - limit if n > limit else 0)
    assert from_names[:len(big)] == [f"s{i}" for i in big] == to_names[:len(big)]
    np.testing.assert_allclose(np.nansum(_row_shares(counts), axis=1)[counts.sum(axis=1) > 0], 1.0)


def test_a_report_with_a_drift_shows_its_findings_heatmap_shares_and_feature_psi(prof, model_drift, tmp_path):
    d = model_drift
    assert d.migration is not None and d.features is not None and d.segments is not None
    path = write_report(tmp_path / "drift.html", prof, drift=d)
    text = path.read_text(encoding="utf-8")
    page = _parse(text)
    words = " ".join(page.text)
    assert "<h2>Drift</h2>" in text
    section = words.split("Drift", 1)[1]
    for finding in d.findings:
        assert finding in section
    for head in ("Who moved where", "Segment sizes, previous snapshot and now", "Segment shares at fit and now",
                 "Feature drift: PSI against the reference"):
        assert head in section
    for feature in d.features.column("feature").to_pylist():
        assert feature in section
    for word in set(d.features.column("band").to_pylist()) | set(d.features.column("verdict").to_pylist()):
        assert word in section
    assert HOSTILE in section and html.escape(HOSTILE, quote=True) in text and "<script>" not in text
    assert f"{d.n_current:,} customers now" in section and f"{d.n_reference:,} when the model was fitted" in section
    from segmint.report.html import _by_psi
    shown = _by_psi(d.features)
    psis = shown.column("psi").to_pylist()
    assert psis == sorted(psis, reverse=True) and shown.column("feature")[0].as_py() == "monetary"  # x 1.5
    table = section.split("Feature drift")[1]
    positions = [table.index(f) for f in shown.column("feature").to_pylist()]
    assert positions == sorted(positions)  # the page lists them largest PSI first
    images = [v for t, k, v in page.attrs if t == "img" and k == "src"]
    assert len(images) == 3  # sizes, differences, and the migration heatmap
    alts = [v for t, k, v in page.attrs if t == "img" and k == "alt"]
    assert any(a.startswith("Migration heatmap") for a in alts)
    for src in images:
        _png_shape(base64.b64decode(src.split(",", 1)[1]))
    assert os.path.getsize(path) <= size_bound(len(prof.segments), len(prof.features), drift=d)
    note = table.split("Largest PSI first.")[1]  # what the verdict is, without claiming too much
    k = d.features.num_rows
    assert f"1 - alpha / k (alpha {d.alpha:.3g}, k = {k} features)" in note and "too few rows" in note
    assert "the verdict does not" not in note and "some false alarms remain" in note


def test_a_drift_of_two_snapshots_has_the_heatmap_and_sizes_but_no_psi_tables(prof, snapshot_drift, tmp_path):
    text = write_report(tmp_path / "r.html", prof, drift=snapshot_drift).read_text(encoding="utf-8")
    assert "Who moved where" in text and "Segment sizes, previous snapshot and now" in text
    assert "Feature drift" not in text and "Segment shares at fit and now" not in text
    assert text.count("<img ") == 3
    for name in NAMES:
        assert html.escape(name, quote=True) in text.split("<h2>Drift</h2>")[1]


def test_a_drift_without_views_shows_its_note_and_no_heatmap(prof, tmp_path):
    from segmint.monitor.compare import Drift

    note = "feature drift skipped: <the model> holds no reference statistics"
    text = write_report(tmp_path / "r.html", prof, drift=Drift(n_current=5, notes=[note])).read_text(encoding="utf-8")
    section = " ".join(_parse(text.split("<h2>Drift</h2>")[1]).text)
    assert note in section and "Who moved where" not in section
    assert text.count("<img ") == 2


def test_drift_names_of_a_hundred_thousand_characters_are_cut_and_the_size_bound_holds(prof, tmp_path):
    from segmint.monitor.compare import drift

    names = ["x" * 100_000, "<&>" * 30_000, "short"]
    previous, current = _snapshots(names, n=600, seed=3)
    d = drift(current, previous=previous, id_column="customer_id")
    path = write_report(tmp_path / "long.html", prof, drift=d)
    size = os.path.getsize(path)
    assert size <= size_bound(len(prof.segments), len(prof.features), drift=d)
    assert size < 3_000_000
    page = _parse(path.read_text(encoding="utf-8").split("<h2>Drift</h2>")[1])
    assert "short" in page.text
    assert all(len(s) <= 600 for s in page.text)
    assert any(s.startswith("x" * 100) and len(s) == 200 and s.endswith("\u2026") for s in page.text)


def test_the_report_is_never_written_over_a_snapshot_the_drift_read(prof, tmp_path):
    from segmint.monitor.compare import drift
    from segmint.io import write_table

    previous, current = _snapshots(NAMES, n=500)
    write_table(previous, tmp_path / "previous.arrow")
    before = (tmp_path / "previous.arrow").read_bytes()
    d = drift(current, previous=str(tmp_path / "previous.arrow"), id_column="customer_id")
    with pytest.raises(OutputError):
        write_report(tmp_path / "previous.arrow", prof, drift=d)
    with pytest.raises(OutputError):
        plots.save_png(plots.migration_heatmap(d.migration), tmp_path / "previous.arrow")
    assert (tmp_path / "previous.arrow").read_bytes() == before


def test_write_report_refuses_a_drift_that_is_not_one(prof, tmp_path):
    with pytest.raises(ParameterError, match=r"drift= must be a segmint Drift .*got str"):
        write_report(tmp_path / "r.html", prof, drift="drift.json")
    assert not os.listdir(tmp_path)


def _model_files(tmp_path, reference=True):
    """customers.arrow (a later base), model.seg fitted on the earlier one, previous.parquet (its scores)."""
    from segmint import KMeans, Segmenter
    from segmint.datasets import make_customers
    from segmint.io import write_table

    base = make_customers(3_000, random_state=4)
    model = Segmenter(["frequency", "monetary", "tenure_days"], id_column="customer_id",
                      clusterer=KMeans(n_clusters=3, random_state=0, n_init=1)).fit(base)
    model.score(base, out=tmp_path / "previous.parquet")
    if not reference:
        model.reference_ = None  # what a model saved by an older segmint loads as
    model.save(tmp_path / "model.seg")
    write_table(base.slice(200), tmp_path / "customers.arrow")
    return tmp_path / "customers.arrow", tmp_path / "model.seg", tmp_path / "previous.parquet"


def test_the_report_command_with_a_model_and_a_previous_snapshot_adds_the_whole_drift_section(tmp_path, capsys):
    from segmint.cli import main

    data, model, previous = _model_files(tmp_path)
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(data), "--segments", str(model), "--previous", str(previous),
                 "--no-validate", "-o", str(out)])
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    assert "with a drift section" in captured.out
    text = out.read_text(encoding="utf-8")
    for head in ("<h2>Drift</h2>", "Who moved where", "Segment shares at fit and now", "Feature drift"):
        assert head in text
    assert text.count("<img ") == 3
    assert "200 departed" in " ".join(_parse(text).text)

    code = main(["--quiet", "report", str(data), "--segments", str(model), "--no-validate", "-o", str(out)])
    assert code in (0, None)
    text = out.read_text(encoding="utf-8")  # without --previous: features and shares, no migration
    assert "Feature drift" in text and "Who moved where" not in text and text.count("<img ") == 2


def test_the_report_command_notes_a_model_without_reference_statistics_instead_of_failing(tmp_path, capsys):
    from segmint.cli import main

    data, model, _ = _model_files(tmp_path, reference=False)
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(data), "--segments", str(model), "--no-validate", "-o", str(out)])
    assert code in (0, None), capsys.readouterr().err
    section = " ".join(_parse(out.read_text(encoding="utf-8").split("<h2>Drift</h2>")[1]).text)
    assert "holds none" in section and "segmint refit" in section and "Feature drift" not in section


def test_the_report_command_compares_a_segment_column_with_a_previous_snapshot(tmp_path, capsys):
    from segmint.cli import main
    from segmint.io import write_table

    previous, current = _snapshots(["gold", "silver", "bronze"], n=1_000)
    current = current.append_column("spend", pa.array(np.arange(current.num_rows, dtype=np.float64)))
    write_table(previous, tmp_path / "previous.arrow")
    write_table(current, tmp_path / "current.arrow")
    out = tmp_path / "report.html"
    code = main(["--quiet", "report", str(tmp_path / "current.arrow"), "--segments", "segment", "--id-column",
                 "customer_id", "--previous", str(tmp_path / "previous.arrow"), "--no-validate", "-o", str(out)])
    assert code in (0, None), capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert "Who moved where" in text and "Feature drift" not in text
    assert "1,000 customers before, 1,000 now: 100 new, 100 departed" in " ".join(_parse(text).text)


@pytest.mark.parametrize("extra, words", [
    (["--segments", "segment"], "--id-column"),
    (["--segments", "segment", "--id-column", "customer_id", "--previous", "{tmp}/nowhere.arrow"], "nowhere"),
    (["--segments", "segment", "--id-column", "no_such_id"], "no_such_id"),
    (["--segments", "{tmp}/rules.json", "--id-column", "customer_id"], "neither"),
])
def test_a_wrong_previous_fails_in_one_line_before_the_profile_pass(extra, words, tmp_path, capsys, monkeypatch):
    from segmint import RuleSet
    from segmint.cli import main
    from segmint.io import write_table

    profile_module = sys.modules["segmint.explain.profile"]
    previous, current = _snapshots(["gold", "silver"], n=300)
    write_table(previous, tmp_path / "previous.arrow")
    write_table(current.append_column("x", pa.array(np.arange(300.0))), tmp_path / "current.arrow")
    RuleSet([("big", "x >= 100")], default="small").save(tmp_path / "rules.json")

    def no_pass(*args, **kwargs):
        raise AssertionError("the profile pass ran before --previous was checked")

    monkeypatch.setattr(profile_module, "profile", no_pass)
    argv = [a.format(tmp=tmp_path) for a in extra]
    if "--previous" not in argv:
        argv += ["--previous", str(tmp_path / "previous.arrow")]
    code = main(["--quiet", "report", str(tmp_path / "current.arrow")] + argv + ["-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 1 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
