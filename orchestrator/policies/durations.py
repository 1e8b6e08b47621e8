"""Predicted run durations: a high quantile of past runs, shrunk towards a prior when the
history is short, and a prior by kind/role when there is none."""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.graph import AssetNode

# Seconds. Looked up by kind first (fivetran/airbyte syncs), then by role.
DEFAULT_PRIORS: dict[str, float] = {
    "fivetran": 15 * 60,
    "airbyte": 20 * 60,
    "connector_table": 15 * 60,
    "dbt_source": 15 * 60,  # a source table in a dbt manifest is loaded by some connector
    "dbt_model": 3 * 60,
    "dashboard": 60,
    "other": 5 * 60,
}
_KIND_PRIORS = ("fivetran", "airbyte")


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of unsorted values (numpy's default method)."""
    data = sorted(values)
    if not data:
        raise ValueError("quantile of no values")
    pos = (len(data) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Estimate:
    seconds: float
    basis: str  # "p90 of 12 runs", "prior dbt_model", "p90 of 2 runs blended with prior ..."


class DurationModel:
    """``history``: asset key -> past run durations in seconds, oldest first.

    The estimate is the ``q`` quantile of the last ``max_samples`` runs. With fewer than
    ``min_samples`` runs it is blended with the prior: (n * quantile + (min_samples - n) *
    prior) / min_samples, so one lucky fast run does not make a deadline look easy.
    """

    def __init__(
        self,
        history: Mapping[str, Sequence[float]] | None = None,
        *,
        q: float = 0.9,
        priors: Mapping[str, float] | None = None,
        min_samples: int = 5,
        max_samples: int = 100,
    ):
        if not 0 < q <= 1:
            raise ValueError("q must be in (0, 1]")
        self.q = q
        self.priors = {**DEFAULT_PRIORS, **(priors or {})}
        self.min_samples = max(1, min_samples)
        self.max_samples = max_samples
        # an array('d') of samples stays one (8 bytes a sample, no float objects: 100,000 assets
        # with 10 samples each are 14 MiB as arrays, 37 MiB as lists of floats)
        self.history: dict[str, list[float]] = {
            k: (array("d", [x for x in v if x >= 0][-max_samples:]) if isinstance(v, array)
                else [float(x) for x in v if x is not None and x >= 0][-max_samples:])
            for k, v in (history or {}).items()
        }
        # estimates from history, one per asset with samples; an asset without samples gets its
        # prior's one shared ``Estimate`` (``_priors``), not an entry per asset: 100,000 assets
        # resolved with the priors held ~10 MiB of identical estimates otherwise
        self._cache: dict[str, Estimate] = {}
        self._priors: dict[tuple, Estimate] = {}
        self._bases: dict[str, str] = {}  # one string per distinct basis text, not one per asset

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, float]] | Iterable[Mapping], **kwargs) -> DurationModel:
        """Records as (asset_key, seconds) pairs or mappings with 'asset_key' and 'seconds'."""
        history: dict[str, list[float]] = {}
        for rec in records:
            if isinstance(rec, Mapping):
                key, seconds = rec["asset_key"], rec["seconds"]
            else:
                key, seconds = rec
            history.setdefault(key, []).append(float(seconds))
        return cls(history, **kwargs)

    @classmethod
    def from_json(cls, path: str | Path, **kwargs) -> DurationModel:
        """A JSON file: {"asset/key": [seconds, ...], ...} or a list of records."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, list):
            return cls.from_records(data, **kwargs)
        return cls(data, **kwargs)

    def prior(self, node: AssetNode) -> tuple[float, str]:
        if node.role == "connector_table" or node.connector:
            for kind in _KIND_PRIORS:
                if kind in node.kinds:
                    return self.priors[kind], f"prior for {kind} syncs"
        if node.role in self.priors:
            return self.priors[node.role], f"prior for {node.role}"
        return self.priors["other"], "prior"

    def estimate(self, node: AssetNode) -> Estimate:
        hit = self._cache.get(node.key)
        if hit is not None:
            return hit
        runs = self.history.get(node.key)
        if not runs:
            # what ``prior`` reads of the node: its role, kinds and whether it has a connector
            slot = (node.role, node.kinds, bool(node.connector))
            est = self._priors.get(slot)
            if est is None:
                est = self._priors[slot] = Estimate(*self.prior(node))
            return est
        pct = f"p{round(self.q * 100)}"
        observed = quantile(runs, self.q)
        n = len(runs)
        if n >= self.min_samples:
            est = Estimate(observed, f"{pct} of {n} runs")
        else:
            prior, basis = self.prior(node)
            value = (n * observed + (self.min_samples - n) * prior) / self.min_samples
            est = Estimate(value, f"{pct} of {n} run{'s' if n > 1 else ''} blended with {basis}")
        basis = self._bases.setdefault(est.basis, est.basis)
        if basis is not est.basis:
            est = Estimate(est.seconds, basis)
        self._cache[node.key] = est
        return est

    def seconds(self, node: AssetNode) -> float:
        return self.estimate(node).seconds
