"""``segmint refit MODEL DATA -o NEW.seg``: fit a saved model again on new data, keeping its names."""
import time

from .output import note


def run(args):
    """Refit the model at ``args.model`` on ``args.data``, print the report, save ``args.output``.

    The paths were checked before (``cli/paths.py``): the output is neither the model nor the
    data, so the old model file is never touched.
    """
    from ..pipeline.segmenter import Segmenter

    model = Segmenter.load(args.model)
    t0 = time.perf_counter()
    new = model.refit(args.data, statistics=args.statistics, n_clusters=args.n_clusters, as_of=args.as_of,
                      batch_size=args.batch_size, random_state=args.random_state)
    dt = time.perf_counter() - t0
    new.save(args.output)
    print(str(new.refit_))
    print(f"\nrefitted in {dt:.2f} s -> {args.output} ({args.model} unchanged)")
    if model.reference_ is None:
        note(args, f"{args.model} held no reference statistics (saved by an older segmint); "
                   f"{args.output} has them: segmint drift can use it")
