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
    None: the embeddings), its alpha picked by val Spearman."""
    from sklearn.linear_model import Ridge

    xtr, xva, xte = _standardize(data, features)
    fits = [Ridge(alpha=a).fit(xtr, data.train[1]) for a in alphas]
    return max(fits, key=lambda m: spearman(data.val[1], m.predict(xva))).predict(xte)


def ridge(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    p = select_ridge(data, None, (1.0, 10.0, 100.0, 1000.0, 10000.0))
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


def mord_at(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    import mord

    xtr, xva, xte = _standardize(data)
    best = max(
        (spearman(data.val[1], mord.LogisticAT(alpha=a).fit(xtr, data.train[1]).predict(xva)), a)
        for a in (10.0, 100.0, 1000.0)
    )
    m = mord.LogisticAT(alpha=best[1]).fit(xtr, data.train[1])
    return xte @ m.coef_, m.predict(xte)


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
}


FAMILY_METHODS = ("silva", "silva_scorer_recipe", "coral", "corn")


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
