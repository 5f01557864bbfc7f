"""Inference: the live model's scores for a batch, and the shadow model's, off the event loop.

The live model runs in the executor on the whole batch; if that fails, item by item, so one text
the model chokes on costs only its own message (``classifier_error``). Every answer is checked
against the classifier contract (:func:`check_scores`). The shadow model scores the same texts;
whatever goes wrong with it is only counted.
"""

from __future__ import annotations

import asyncio
import logging
import numbers
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor

from classifiers.base import Classifier, Scores
from streams.metrics import Metrics
from streams.records import ErrorCode, ModelRef, Rejection, Stage

log = logging.getLogger(__name__)


class ClassifierContractError(RuntimeError):
    """The classifier returned something other than one finite score in [0, 1] per label per text."""


def check_scores(scores: Sequence[object], texts: int, labels: Sequence[str]) -> list[Scores]:
    """``scores`` if they are one map per text of every label to a finite number in [0, 1], else
    :class:`ClassifierContractError`: a NaN must never clear an item or reach a record."""
    if len(scores) != texts:
        raise ClassifierContractError(f"expected {texts} score maps, got {len(scores)}")
    for one in scores:
        if not isinstance(one, Mapping) or set(one) != set(labels):
            keys = sorted(map(str, one)) if isinstance(one, Mapping) else type(one).__name__
            raise ClassifierContractError(f"expected scores for {sorted(labels)}, got {keys}")
        for label in labels:
            value = one[label]
            # NaN and the infinities fail the range check too.
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
                raise ClassifierContractError(f"score of {label} is {value!r}, not a number in [0, 1]")
    return list(scores)  # type: ignore[arg-type]


def model_ref(classifier: Classifier) -> ModelRef:
    return ModelRef(name=classifier.name, revision=classifier.revision)


class Scorer:
    """The live model (and optionally a shadow model) behind an executor."""

    def __init__(
        self,
        classifier: Classifier,
        executor: Executor,
        metrics: Metrics,
        *,
        shadow: Classifier | None = None,
        backend: str = "transformers",
    ) -> None:
        self.classifier = classifier
        self.executor = executor
        self.metrics = metrics
        self.shadow = shadow
        self.backend = backend
        self.model = model_ref(classifier)
        self.shadow_model = model_ref(shadow) if shadow is not None else None

    async def score(self, texts: Sequence[str]) -> list[Scores | Rejection]:
        """Scores for every text, or why the model could not score it. Never raises."""
        if not texts:
            return []
        try:
            return list(await self._predict(self.classifier, list(texts), timed=True))
        except Exception as exc:  # the model's failure must not take the batch down
            log.warning("classifier failed on a batch of %d (%s); retrying item by item", len(texts), exc)
        results: list[Scores | Rejection] = []
        for text in texts:
            try:
                (scores,) = await self._predict(self.classifier, [text], timed=True)
                results.append(scores)
            except Exception as exc:
                results.append(
                    Rejection(
                        ErrorCode.CLASSIFIER_ERROR, f"{type(exc).__name__}: {exc}"[:300], stage=Stage.CLASSIFY
                    )
                )
        return results

    async def score_shadow(self, texts: Sequence[str]) -> list[Scores] | None:
        """The shadow model's scores for every text; None without a shadow model or when it
        failed (counted: a candidate model must never disturb the live pipeline)."""
        if self.shadow is None or not texts:
            return None
        try:
            return await self._predict(self.shadow, list(texts), timed=False)
        except Exception as exc:
            log.warning("shadow model failed on a batch of %d: %s", len(texts), type(exc).__name__)
            self.metrics.shadow_errors.inc()
            return None

    async def _predict(self, classifier: Classifier, texts: list[str], *, timed: bool) -> list[Scores]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        scores = await loop.run_in_executor(self.executor, classifier.predict, texts)
        if timed:
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
        return check_scores(scores, len(texts), list(classifier.labels))
