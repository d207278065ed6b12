"""The data and the peer methods the quality benchmarks compare: each method returns (test score,
test predicted class) on a taste's content-hashed splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
import yaml

from bench import common, recipe
from bench.common import fit_torch, mlp, tensor
from silva_model.head import predict
from silva_model.manifest import ManifestArrays, build_manifest, to_arrays
from silva_model.metrics import qwk, spearman
from silva_model.pairs import Pairs
from silva_model.synthetic import TasteData, make_taste_dataset
from silva_model.train import train
from silva_model.train_config import TrainConfig

Split = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class Data:
    train: Split
    val: Split
    test: Split
    oracle_spearman: float
    oracle_qwk: float
    arrays: ManifestArrays  # all rows, in the taste's order
    generated: TasteData  # what the taste was made of: its noiseless value, styles and latents

    @property
    def taste(self) -> np.ndarray:
        return self.generated.taste


def make_data(n: int, seed: int, fresh: int = 0, **taste) -> Data:
    """n rated images on content-hashed splits. With `fresh`, the test rows are that many fresh
    images instead of the test split: at a few hundred ratings a test split of a few dozen
    images would decide the rows by chance (the unused test split stays held out, as it is for a
    person)."""
    d = make_taste_dataset(n + fresh, seed=seed, **taste)
    a = to_arrays(build_manifest(d.embeddings[:n], d.ratings[:n]))
    test = np.arange(n, n + fresh) if fresh else np.flatnonzero(a.mask("test"))
    return Data(
        a.subset("train"),
        a.subset("val"),
        (d.embeddings[test], d.ratings[test]),
        spearman(d.ratings[test], d.taste[test]),
        qwk(d.ratings[test], d.oracle_ratings[test]),
        a,
        d,
    )


def silva(
    data: Data, seed: int, cfg: TrainConfig, pairs: Pairs | None = None
) -> tuple[np.ndarray, np.ndarray]:
    return silva_on(data.arrays, data.test[0], seed, cfg, pairs)


def silva_on(
    arrays: ManifestArrays, x_test: np.ndarray, seed: int, cfg: TrainConfig, pairs: Pairs | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """silva trained on these rows, scoring x_test."""
    run_cfg = dataclasses.replace(cfg, seed=seed, device=common.DEVICE.type)
    return predict(train(arrays, run_cfg, progress=False, pairs=pairs).head, x_test)


def _standardize(data: Data, features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, val and test rows of `features` (one row per manifest row; the embeddings, and the
    test rows `data.test`, fresh images where the data has them, by default), standardised with
    train statistics."""
    f = data.arrays.embeddings if features is None else features
    tr, va = (f[data.arrays.mask(s)] for s in ("train", "val"))
    te = data.test[0] if features is None else f[data.arrays.mask("test")]
    mu, sd = tr.mean(0), tr.std(0) + 1e-6
    return tuple(((x - mu) / sd).astype(np.float32) for x in (tr, va, te))


def _regression_classes(pred: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pred), 1, 5).astype(np.int64)


def select_ridge(data: Data, features: np.ndarray | None, alphas: tuple[float, ...]) -> np.ndarray:
    """Test predictions of a ridge fit on standardised train features (one row per manifest row;
    None: the embeddings), its alpha picked by val Spearman (the ceiling's known-form bound)."""
    from sklearn.linear_model import Ridge

    xtr, xva, xte = _standardize(data, features)
    fits = [Ridge(alpha=a).fit(xtr, data.train[1]) for a in alphas]
    return max(fits, key=lambda m: spearman(data.val[1], m.predict(xva))).predict(xte)


INNER_FOLDS = 3  # the peers' inner cross-validation: as many folds as silva's own choice uses
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(0, 5, 11))
MORD_ALPHAS = (4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)


def inner_cv(x: np.ndarray, y: np.ndarray, path: Callable, seed: int) -> int:
    """Index of the setting whose fits on the other folds of the train split score best (mean
    Spearman over the held-out folds): `path(x_fit, y_fit, x_held)` -> held-out scores per setting."""
    fold = np.random.default_rng([seed, 7]).permutation(len(y)) % INNER_FOLDS
    per = [
        [spearman(y[fold == f], s) for s in path(x[fold != f], y[fold != f], x[fold == f])]
        for f in range(INNER_FOLDS)
    ]
    return int(np.argmax(np.mean(per, axis=0)))


def _ridge_path(x: np.ndarray, y: np.ndarray, held: np.ndarray) -> list[np.ndarray]:
    from sklearn.linear_model import Ridge

    return [Ridge(alpha=a).fit(x, y).predict(held) for a in RIDGE_ALPHAS]


def ridge(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression on the standardised embeddings, its alpha from inner CV of the train split."""
    from sklearn.linear_model import Ridge

    xtr, _, xte = _standardize(data)
    ytr = data.train[1].astype(np.float64)
    alpha = RIDGE_ALPHAS[inner_cv(xtr, ytr, _ridge_path, seed)]
    p = Ridge(alpha=alpha).fit(xtr, ytr).predict(xte)
    return p, _regression_classes(p)


def _torch_peer(
    data: Data, seed: int, cfg: TrainConfig, model: torch.nn.Module, loss_fn: Callable, predict_fn: Callable
) -> tuple[np.ndarray, np.ndarray]:
    xtr, xva, xte = _standardize(data)
    fit_torch(
        model,
        loss_fn,
        predict_fn,
        xtr,
        data.train[1],
        xva,
        data.val[1],
        cfg.epochs,
        cfg.lr,
        cfg.weight_decay,
        cfg.batch_size,
        seed,
    )
    return predict_fn(model, xte)


def laion_mlp(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The LAION aesthetic predictor's MLP (1024-128-64-16-1, dropout) trained with MSE."""
    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(data.train[0].shape[1], 1024),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(1024, 128),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(128, 64),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(64, 16),
        torch.nn.Linear(16, 1),
    )

    @torch.no_grad()
    def pred(model, x):
        p = model(tensor(x)).squeeze(-1).cpu().numpy()
        return p, _regression_classes(p)

    return _torch_peer(
        data, seed, cfg, m, lambda out, y: torch.nn.functional.mse_loss(out.squeeze(-1), y.float()), pred
    )


def coral(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from coral_pytorch.dataset import proba_to_label
    from coral_pytorch.layers import CoralLayer
    from coral_pytorch.losses import coral_loss

    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        mlp(data.train[0].shape[1], cfg.hidden[:-1], cfg.hidden[-1], cfg.dropout),
        torch.nn.GELU(),
        CoralLayer(cfg.hidden[-1], 5),
    )

    @torch.no_grad()
    def pred(model, x):
        p = torch.sigmoid(model(tensor(x))).cpu()
        return p.mean(1).numpy(), (proba_to_label(p) + 1).numpy()

    return _torch_peer(
        data,
        seed,
        cfg,
        m,
        # the levels [y > k], as coral_pytorch's levels_from_labelbatch builds them row by row in Python
        lambda out, y: coral_loss(out, (y[:, None] > torch.arange(1, 5, device=y.device)).float()),
        pred,
    )


def corn(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from coral_pytorch.dataset import corn_label_from_logits
    from coral_pytorch.losses import corn_loss

    torch.manual_seed(seed)
    m = mlp(data.train[0].shape[1], cfg.hidden, 4, cfg.dropout)

    @torch.no_grad()
    def pred(model, x):
        logits = model(tensor(x)).cpu()
        cum = torch.cumprod(torch.sigmoid(logits), dim=1)  # P(y > k)
        return cum.mean(1).numpy(), (corn_label_from_logits(logits) + 1).numpy()

    return _torch_peer(data, seed, cfg, m, lambda out, y: corn_loss(out, y - 1, num_classes=5), pred)


def _mord_path(x: np.ndarray, y: np.ndarray, held: np.ndarray) -> list[np.ndarray]:
    """mord LogisticAT's own objective, gradient and solver (L-BFGS-B) along MORD_ALPHAS from the
    largest, each fit warm-started at the last; held-out scores in MORD_ALPHAS' order. For the CV
    only, at tolerance 1e-5 (the held-out Spearman moved by under 1e-4 against mord's 1e-12)."""
    from mord.threshold_based import grad_margin, obj_margin
    from scipy import optimize

    classes = np.unique(y)
    k = len(classes)
    yk = np.searchsorted(classes, y)  # mord wants 0..K-1 with every class present
    tri = np.tril(np.ones((k - 1, k - 1)))
    p = np.concatenate([np.zeros(x.shape[1]), np.arange(k - 1, dtype=np.float64)])
    bounds = [(None, None)] * (x.shape[1] + 1) + [(0, None)] * (k - 2)
    out = {}
    for alpha in sorted(MORD_ALPHAS, reverse=True):
        args = (x.astype(np.float64), yk, alpha, k, np.ones((k, k - 1)), tri, None)
        p = optimize.minimize(
            obj_margin, p, jac=grad_margin, args=args, method="L-BFGS-B", bounds=bounds, tol=1e-5
        ).x
        out[alpha] = held @ p[: x.shape[1]]
    return [out[a] for a in MORD_ALPHAS]


def mord_at(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """mord's LogisticAT (all-threshold logistic loss, L2) on the standardised embeddings, its
    alpha from inner CV of the train split, refitted on all of it by mord itself."""
    import mord

    xtr, _, xte = _standardize(data)
    classes = np.unique(data.train[1])
    ytr = np.searchsorted(classes, data.train[1])
    alpha = MORD_ALPHAS[inner_cv(xtr, data.train[1], _mord_path, seed)]
    m = mord.LogisticAT(alpha=alpha).fit(xtr, ytr)
    return xte @ m.coef_, classes[np.clip(m.predict(xte), 0, len(classes) - 1)]


def plain_mlp(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """A plain cumulative MLP: silva's trunk with K-1 outputs, binary cross-entropy on [y > k] with
    each bar's pos_weight = #neg / #pos, 40 epochs, batch 256, and nothing else (no shared latent,
    EMA, RankNet or calibration), under the torch protocol every torch peer shares."""
    torch.manual_seed(seed)
    m = mlp(data.train[0].shape[1], cfg.hidden, 4, cfg.dropout)
    y = data.train[1]
    pos = np.array([(y > k).sum() for k in range(1, 5)], dtype=np.float64)
    pos_weight = tensor(((len(y) - pos) / np.maximum(pos, 1)).astype(np.float32))

    def loss(out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        targets = (yb[:, None] > torch.arange(1, 5, device=yb.device)).float()
        return torch.nn.functional.binary_cross_entropy_with_logits(out, targets, pos_weight=pos_weight)

    @torch.no_grad()
    def pred(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = torch.sigmoid(model(tensor(x))).cpu()
        return p.mean(1).numpy(), (1 + (p > 0.5).sum(1)).numpy()

    plain = dataclasses.replace(cfg, epochs=2 * cfg.epochs, batch_size=256)  # --quick halves it too
    return _torch_peer(data, seed, plain, m, loss, pred)


def silva_scorer_recipe(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The recipe published with silva-scorer (bench/recipe.py), on its own raw inputs: its
    LayerNorm does the input scaling."""
    torch.manual_seed(seed)
    model, loss = recipe.build(data.train[0].shape[1], data.train[1])
    fit_torch(
        model,
        loss,
        recipe.predict,
        data.train[0],
        data.train[1],
        data.val[0],
        data.val[1],
        recipe.EPOCHS if cfg.epochs >= 20 else cfg.epochs * 2,  # --quick halves every method
        recipe.LR,
        recipe.WEIGHT_DECAY,
        recipe.BATCH,
        seed,
        warmup_fraction=recipe.WARMUP,
        clip=recipe.CLIP,
    )
    return recipe.predict(model, data.test[0])


METHODS: dict[str, Callable] = {
    "silva": silva,
    "silva_scorer_recipe": silva_scorer_recipe,
    "ridge": ridge,
    "laion_mlp": laion_mlp,
    "coral": coral,
    "corn": corn,
    "mord_logistic_at": mord_at,
    "plain_mlp": plain_mlp,
}


FAMILY_METHODS = ("silva", "silva_scorer_recipe", "coral", "corn")
# The cold start (issue 42): the default against today's MLP and the peers that lead at a few
# hundred ratings on some tastes, at sizes where every row is scored on fresh images.
COLD_METHODS = ("silva", "silva[model=mlp]", "mord_logistic_at", "ridge", "plain_mlp")
COLD_SIZES = (100, 250, 500, 1000)


def method_fn(name: str) -> Callable:
    """A method by name; `silva[members=5;hidden=[512]]` is silva with those training options
    (values read as YAML), so one run can compare the default with candidate defaults."""
    if not name.startswith("silva["):
        return METHODS[name]
    change = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in name[6:-1].split(";"))}
    TrainConfig.from_dict(change)  # unknown options fail here, not hours later

    def variant(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        return silva(data, seed, dataclasses.replace(cfg, **change))

    return variant
