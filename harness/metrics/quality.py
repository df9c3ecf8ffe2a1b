"""Sample-quality metrics on clean-fid's machinery, with the protocol on every row.

- `fid_*`: `cleanfid.fid.frechet_distance` (scipy's `sqrtm`, with clean-fid's eps fallback for
  near-singular products) on float64 means and covariances.
- `kid_*`: `cleanfid.fid.kernel_distance` (cubic polynomial kernel MMD), evaluated one subset
  at a time over 100 seeded subsets so that the mean and its standard deviation are reported;
  the subset size is min(1000, n, n_ref), so small samples never crash (docs/pitfalls.md).
- `precision_*`, `recall_*`: improved precision and recall (Kynkaenniemi et al. 2019,
  arXiv 1904.06991) with k = 3 nearest-neighbour manifolds in the same feature space.
- `duplicate_rate_*`: mode collapse in one number: the fraction of samples whose nearest other
  sample is closer than a threshold calibrated on real data, the `DUP_QUANTILE` quantile of the
  nearest-neighbour distances among as many real images (real data scores about `DUP_QUANTILE`
  by construction; a collapsed generator approaches 1). Both sets are cut to the same size m,
  because nearest-neighbour distances shrink as a set grows.
- `class_match`: the fraction of class-conditional samples the domain classifier assigns to
  their conditioning class.

Inception and domain features never share a name: every metric name ends in its space.
Reference statistics are computed once per (data set, split, extractor, resolution, count) and
cached under the assets directory (`refstats/<key>.npz`); the key is on every row.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from genbench.harness.metrics.assets import assets_dir
from genbench.harness.errors import GenbenchError
from genbench.harness.metrics import QUALITY_METRICS, register_metric
from genbench.harness.store.files import atomic_write_bytes

if TYPE_CHECKING:  # torch loads when a metric is measured: naming the metrics needs none
    import torch

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PR_K = 3
DUP_QUANTILE = 0.05
# fewest samples (and reference samples) each metric family is defined for
MIN_SAMPLES = {"fid": 2, "kid": 2, "precision": PR_K + 1, "recall": PR_K + 1, "duplicate": 3}
CLEAN_PROTOCOL = {"inception": "clean-fid clean mode: uint8, gray->RGB, PIL bicubic 299",
                  "domain": "uint8-quantised, native resolution, domain classifier features",
                  "ssl": "uint8-quantised, native resolution, self-supervised (SimCLR) features "
                         "of this data set: comparable within it only"}


@dataclass(frozen=True)
class Reference:
    """Features of the reference images of one feature space, with their Gaussian fit."""

    key: str  # cache key recorded in `ref_split`
    split: str
    feats: np.ndarray  # (n_ref, D) float64
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64

    @property
    def n(self) -> int:
        return len(self.feats)


@dataclass(frozen=True)
class MetricInput:
    feats: np.ndarray  # (N, D) float64 features of the generated samples (points: the samples)
    ref: Reference | None  # None in the "exact" space
    logits: np.ndarray | None  # (N, K) domain classifier logits (domain space only)
    labels: np.ndarray | None  # (N,) conditioning labels of class-conditional samples
    law: Any = None  # the data set's exact law ("exact" space: `genbench.harness.data.law`)
    # what several metrics of one space share, computed once (precision and recall's k-NN pass)
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def gaussian_fit(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance in float64."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """clean-fid's Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    from cleanfid.fid import frechet_distance as fd

    return float(fd(np.float64(mu1), np.float64(sigma1), np.float64(mu2), np.float64(sigma2)))


def kernel_distance(feats1: np.ndarray, feats2: np.ndarray, *, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """(mean, std) over `subsets` seeded evaluations of clean-fid's `kernel_distance`."""
    from cleanfid.fid import kernel_distance as kd

    state = np.random.get_state()  # clean-fid draws subsets from the global NumPy generator
    np.random.seed(seed)
    try:
        values = [kd(feats1, feats2, num_subsets=1, max_subset_size=subset_size)
                  for _ in range(subsets)]
    finally:
        np.random.set_state(state)
    return float(np.mean(values)), float(np.std(values, ddof=1))


def _kth_nn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest neighbour within the same set (self excluded)."""
    import torch

    radii = []
    for chunk in feats.split(1024):
        d = torch.cdist(chunk, feats)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself
    return torch.cat(radii)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    """Improved precision (the fraction of fakes inside at least one real k-NN ball) and recall
    (the fraction of reals inside at least one fake k-NN ball), from one pass over the
    fake-real distances: each chunk of fakes against every real serves both."""
    import torch

    r = torch.from_numpy(np.asarray(real, dtype=np.float32))
    f = torch.from_numpy(np.asarray(fake, dtype=np.float32))
    radii_r, radii_f = _kth_nn_radii(r, k), _kth_nn_radii(f, k)
    fake_inside, real_covered = [], torch.zeros(len(r), dtype=torch.bool)
    for chunk, radii in zip(f.split(1024), radii_f.split(1024)):
        d = torch.cdist(chunk, r)  # (chunk, N_real)
        fake_inside.append((d <= radii_r[None]).any(1))
        real_covered |= (d <= radii[:, None]).any(0)
    return float(torch.cat(fake_inside).float().mean()), float(real_covered.float().mean())


def duplicate_rate(real: np.ndarray, fake: np.ndarray,
                   q: float = DUP_QUANTILE) -> tuple[float, float, int]:
    """(rate, threshold, m): the fraction of the first m fakes whose nearest other fake lies
    closer than the q-quantile of the nearest-neighbour distances among the first m reals,
    m = min(len(real), len(fake))."""
    import torch

    m = min(len(real), len(fake))
    r = torch.from_numpy(np.asarray(real[:m], dtype=np.float32))
    f = torch.from_numpy(np.asarray(fake[:m], dtype=np.float32))
    threshold = float(torch.quantile(_kth_nn_radii(r, 1), q))
    return float((_kth_nn_radii(f, 1) < threshold).float().mean()), threshold, m


def _fid_note(n: int, dim: int) -> str | None:
    stable = max(2000, 2 * dim)
    if n < stable:
        return (f"only {n} samples for {dim}-d features (< {stable}): FID is biased upward and "
                "noisy at this size; compare kid_* (with its std) instead")
    return None


def _register_space(space: str) -> None:
    def fid(m: MetricInput) -> dict[str, Any]:
        mu, sigma = gaussian_fit(m.feats)
        return {"value": frechet_distance(mu, sigma, m.ref.mu, m.ref.sigma),
                "note": _fid_note(len(m.feats), m.feats.shape[1]),
                "protocol": f"clean-fid frechet_distance float64; {CLEAN_PROTOCOL[space]}"}

    def kid(m: MetricInput) -> dict[str, Any]:
        size = min(KID_SUBSET_SIZE, len(m.feats), m.ref.n)
        mean, std = kernel_distance(m.feats, m.ref.feats)
        return {"value": mean, "std": std,
                "protocol": f"clean-fid kernel_distance, {KID_SUBSETS} subsets of {size}; "
                            f"{CLEAN_PROTOCOL[space]}"}

    def pr(which: int) -> Callable[[MetricInput], dict[str, Any]]:
        def fn(m: MetricInput) -> dict[str, Any]:
            if "precision_recall" not in m.memo:  # both metrics of a space: one pass
                m.memo["precision_recall"] = precision_recall(m.ref.feats, m.feats)
            values = m.memo["precision_recall"]
            return {"value": values[which],
                    "protocol": f"k-NN manifolds, k={PR_K} (Kynkaanniemi et al. 2019); "
                                f"{CLEAN_PROTOCOL[space]}"}
        return fn

    def dup(m: MetricInput) -> dict[str, Any]:
        rate, threshold, n = duplicate_rate(m.ref.feats, m.feats)
        return {"value": rate,
                "protocol": f"nearest other sample closer than the {DUP_QUANTILE:g} quantile of "
                            f"real nearest-neighbour distances ({threshold:.4g}), {n} vs {n}; "
                            f"{CLEAN_PROTOCOL[space]}"}

    register_metric(f"fid_{space}", space=space, higher_is_better=False, scale="log",
                    description=f"Frechet distance of {space} features")(fid)
    register_metric(f"kid_{space}", space=space, higher_is_better=False, scale="log",
                    description=f"kernel inception distance of {space} features, with std")(kid)
    register_metric(f"precision_{space}", space=space, higher_is_better=True,
                    description=f"improved precision, k={PR_K}, {space} features")(pr(0))
    register_metric(f"recall_{space}", space=space, higher_is_better=True,
                    description=f"improved recall, k={PR_K}, {space} features")(pr(1))
    register_metric(f"duplicate_rate_{space}", space=space, higher_is_better=False,
                    description=f"fraction of near-duplicate samples (mode collapse), {space} "
                                "features")(dup)


for _space in ("inception", "domain", "ssl"):
    _register_space(_space)


@register_metric("class_match", space="domain", higher_is_better=True, needs_labels=True,
                 description="fraction of conditional samples classified as their class")
def class_match(m: MetricInput) -> dict[str, Any]:
    if m.labels is None:
        return {"value": float("nan"), "note": "skipped: the samples are not class-conditional"}
    return {"value": float((m.logits.argmax(1) == m.labels).mean()),
            "protocol": "argmax of the domain classifier == conditioning label"}


def reference_key(dataset: str, split: str, extractor_id: str, resolution: int) -> tuple[str, dict]:
    """The cache key of a split's reference features, and what it hashes: the data set, split,
    resolution and the extractor's id, which names its weights, device kind and precision (so a
    GPU's features never serve a CPU run, nor the reverse)."""
    ident = {"dataset": dataset, "split": split, "extractor": extractor_id,
             "resolution": resolution,
             "n_ref": None, "version": 1}  # (n_ref: the whole split; kept, so keys stay)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16], ident


class Evaluator:
    """Computes a study's quality metrics for batches of samples of one data set.

    Feature extractors and reference statistics load once per evaluator; `prepare` builds
    what is missing (in the driver, before trials start), `evaluate` only reads.
    """

    def __init__(self, dataset: str, resolution: int, *, ref_split: str = "train",
                 device: torch.device | str = "cpu",
                 missing_assets: str = "error"):
        import torch

        from genbench.harness import data as datasets

        self.dataset, self.resolution, self.ref_split = dataset, resolution, ref_split
        self.domain = datasets.info(dataset).domain or dataset  # whose classifier: domain features
        self.device, self.missing_assets = torch.device(device), missing_assets
        self._extractors: dict[str, Any] = {}
        self._refs: dict[str, Reference] = {}

    # -- feature spaces -------------------------------------------------------------------
    def extractor(self, space: str):
        if space not in self._extractors:
            from genbench.harness.metrics import features

            if space == "domain":
                self._extractors[space] = features.load_domain_extractor(
                    self.domain, self.resolution, self.device)
            elif space == "inception":
                self._extractors[space] = features.InceptionExtractor(self.device)
            elif space == "ssl":
                self._extractors[space] = features.load_ssl_extractor(
                    self.dataset, self.resolution, self.digest(), self.device)
            else:
                raise GenbenchError(f"unknown feature space {space!r}")
        return self._extractors[space]

    def digest(self) -> str:
        """The content digest of the data set's train split (what an SSL build learnt)."""
        if not hasattr(self, "_digest"):
            from genbench.harness import data as datasets
            from genbench.harness.metrics.features import data_digest

            self._digest = data_digest(datasets.load(self.dataset, "train", self.resolution).x)
        return self._digest

    def reference(self, space: str) -> Reference:
        """Reference features of `space`, from the cache or computed and cached now."""
        if space in self._refs:
            return self._refs[space]
        from genbench.harness import data as datasets

        ex = self.extractor(space)
        key, ident = reference_key(self.dataset, self.ref_split, ex.id, self.resolution)
        path = assets_dir() / "refstats" / f"{key}.npz"
        if path.is_file():
            z = np.load(path)
            ref = Reference(f"{self.dataset}/{self.ref_split}/r{self.resolution}/n{len(z['feats'])}"
                            f" key={key}", self.ref_split, z["feats"], z["mu"], z["sigma"])
        else:
            images = datasets.load(self.dataset, self.ref_split, self.resolution).x
            feats, _ = ex.run(images)
            mu, sigma = gaussian_fit(feats)
            buf = io.BytesIO()
            np.savez(buf, feats=feats, mu=mu, sigma=sigma, ident=json.dumps(ident))
            atomic_write_bytes(path, buf.getvalue())
            ref = Reference(f"{self.dataset}/{self.ref_split}/r{self.resolution}/n{len(feats)}"
                            f" key={key}", self.ref_split, feats, mu, sigma)
        self._refs[space] = ref
        return ref

    def prepare(self, names: tuple[str, ...] | list[str], echo=print) -> list[str]:
        """Make every asset the metrics need present, building the domain extractor and the
        reference statistics if missing. Returns the names that will be skipped (missing
        Inception weights with missing_assets="skip"); raises GenbenchError otherwise."""
        from genbench.harness.metrics import features

        skipped = []
        for space in sorted({QUALITY_METRICS.get(n).space for n in names} - {"exact"}):
            if space == "domain" and not features.domain_extractor_exists(self.domain, self.resolution):
                echo(f"building the domain feature extractor of {self.domain} "
                     f"(once; cached under {assets_dir()})")
                features.build_domain_extractor(self.domain, self.resolution, echo=echo)
            if space == "ssl" and not features.ssl_extractor_exists(self.dataset, self.resolution,
                                                                    self.digest()):
                echo(f"building the self-supervised feature extractor of {self.dataset} "
                     f"(once per content; cached under {assets_dir()})")
                features.build_ssl_extractor(self.dataset, self.resolution, echo=echo)
            try:
                self.reference(space)
            except GenbenchError:
                if space == "inception" and self.missing_assets == "skip":
                    skipped += [n for n in names if QUALITY_METRICS.get(n).space == space]
                    continue
                raise
        return skipped

    def load(self, names: tuple[str, ...] | list[str]) -> None:
        """Load the networks and reference features the metrics `names` use, now: a trial does
        so before the phase whose memory it measures, so the first setting's
        `sample_peak_mem_mb` does not carry the extractor and the later ones leave it out
        (missing assets are left for `evaluate` to report, as ever)."""
        for space in sorted({QUALITY_METRICS.get(n).space for n in names} - {"exact"}):
            try:
                self.extractor(space)
                self.reference(space)
            except GenbenchError:
                pass

    def evaluate(self, names: tuple[str, ...] | list[str], samples: torch.Tensor,
                 labels: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """Result-row fields (metric, value, std, protocol columns) for each metric name."""
        rows = []
        by_space: dict[str, MetricInput] = {}
        for name in names:
            spec = QUALITY_METRICS.get(name)
            base = {"metric": name, "n_samples": len(samples), "ref_split": None}
            if spec.space == "exact":  # points against the data set's law, no features
                from genbench.harness import data as datasets

                law = datasets.law(self.dataset)
                out = spec.fn(MetricInput(samples.double().numpy(), None, None, None, law))
                rows.append({**base, "ref_split": f"exact law of {self.dataset}",
                             "feature_extractor": "none (the points themselves)", **out})
                continue
            try:
                ex = self.extractor(spec.space)
                ref = self.reference(spec.space)
            except GenbenchError as err:
                if spec.space == "inception" and self.missing_assets == "skip":
                    rows.append({**base, "value": float("nan"), "note": f"skipped: {err}"})
                    continue
                raise
            if spec.space not in by_space:  # features once per space, shared by its metrics
                feats, logits = ex.run(samples)
                by_space[spec.space] = MetricInput(feats, ref, logits,
                                                   None if labels is None else labels.numpy())
            m = by_space[spec.space]
            need = MIN_SAMPLES.get(name.split("_")[0], 1)
            if min(len(m.feats), ref.n) < need:
                out = {"value": float("nan"), "note": f"skipped: {name} needs at least {need} "
                                                       f"samples, got {len(m.feats)} (ref {ref.n})"}
            else:
                out = spec.fn(m)
            rows.append({**base, "n_ref": ref.n, "feature_extractor": ex.id,
                         "ref_split": ref.key, **out})
        return rows
