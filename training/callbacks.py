"""Keras callbacks of a training run: the early stop rule and the per-epoch record that makes runs resumable."""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import keras

from genreslice.errors import ParameterError
from genreslice.training.settings import check_stop_rules

logger = logging.getLogger(__name__)

#: Why training ended, as recorded in ``model.json``.
STOP_TARGET = "target"
STOP_PATIENCE = "patience"
STOP_MAX_EPOCHS = "max_epochs"
STOP_DIVERGED = "diverged"
STOP_REASONS = (STOP_TARGET, STOP_PATIENCE, STOP_MAX_EPOCHS, STOP_DIVERGED)


class GoalEarlyStopping(keras.callbacks.Callback):
    """Stop when validation results are good enough, or when validation loss stops improving.

    Two rules, checked after every epoch (epochs count from 1 in messages):

    * **target** (the predecessor's rule): validation accuracy >= ``target_accuracy`` *and* validation loss
      <= ``target_loss``.
    * **patience**: validation loss has not improved on its best by more than ``min_delta`` for ``patience``
      epochs.

    A validation loss that is NaN or infinite stops training at once (``diverged``): no later epoch can recover.

    The weights of the epoch with the lowest validation loss are kept in memory and restored when training
    ends (by either rule or by running out of epochs), so the model that leaves ``fit`` is the best one seen.

    Parameters
    ----------
    target_accuracy : float or None
        Validation accuracy to reach, in ``[0, 1]``; None disables the target rule.
    target_loss : float or None
        Validation loss to get under; None means any loss (only accuracy counts).
    patience : int
        Epochs without improvement before stopping; 0 disables the patience rule.
    min_delta : float
        Smallest decrease of validation loss that counts as an improvement.
    restore_best_weights : bool
        Restore the best epoch's weights at the end of training.
    """

    def __init__(
        self,
        *,
        target_accuracy: float | None = 0.95,
        target_loss: float | None = 0.2,
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        super().__init__()
        check_stop_rules(target_accuracy, target_loss, patience)
        if min_delta < 0:
            raise ParameterError(f"min_delta={min_delta} must be 0 or more")
        self.target_accuracy = target_accuracy
        self.target_loss = target_loss
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.best_loss = math.inf
        self.best_epoch: int | None = None  # 0-based, like Keras's epoch argument
        self.wait = 0
        self.best_weights: list | None = None
        self.stop_reason: str | None = None
        self.stopped_epoch: int | None = None
        self.message = ""

    # The state a resumed run needs, apart from the best weights (kept on disk as the best checkpoint).
    def get_state(self) -> dict:
        return {
            "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stop_reason": self.stop_reason,
            "stopped_epoch": self.stopped_epoch,
            "message": self.message,
        }

    def set_state(self, state: dict, best_weights: list | None = None) -> None:
        self.best_loss = math.inf if state.get("best_loss") is None else float(state["best_loss"])
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.stop_reason = state.get("stop_reason")
        self.stopped_epoch = state.get("stopped_epoch")
        self.message = state.get("message", "")
        self.best_weights = best_weights

    def replay(self, history: Sequence[Mapping]) -> None:
        """Set the rule's state to what it was after the epochs of ``history``, as training them left it.

        For a run resumed from an epoch whose recorded state is missing, or from an earlier epoch than it last
        committed (a damaged checkpoint). Call it before training, while the callback has no model: the
        best weights are not known here and are left None.

        Parameters
        ----------
        history : sequence of mapping
            One row per epoch from the first, each with ``val_loss`` and ``val_accuracy``.
        """
        if self.model is not None:
            raise ParameterError("replay() must be called before the callback is given a model. "
                             f"Received: a callback set to {self.model.name!r}")
        self.set_state({})
        for epoch, row in enumerate(history):
            self.on_epoch_end(epoch, {"val_loss": row["val_loss"], "val_accuracy": row["val_accuracy"]})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if "val_loss" not in logs or "val_accuracy" not in logs:
            raise ParameterError(
                "GoalEarlyStopping needs validation results: fit() must get validation_data and the "
                f"'accuracy' metric. Received logs with keys: {sorted(logs)}"
            )
        val_loss = float(logs["val_loss"])
        val_accuracy = float(logs["val_accuracy"])
        if not math.isfinite(val_loss):
            self._stop(epoch, STOP_DIVERGED, f"validation loss is {val_loss}: training diverged (try a lower "
                                             "--learning-rate)")
            return
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss = val_loss
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights and self.model is not None:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
        if self.target_reached(val_accuracy, val_loss):
            loss_rule = "" if self.target_loss is None else f" and loss {val_loss:.4f} <= {self.target_loss}"
            self._stop(
                epoch,
                STOP_TARGET,
                f"validation accuracy {val_accuracy:.4f} >= {self.target_accuracy}{loss_rule}",
            )
        elif self.patience and self.wait >= self.patience:
            self._stop(
                epoch,
                STOP_PATIENCE,
                f"validation loss has not improved for {self.wait} epochs (best {self.best_loss:.4f} "
                f"at epoch {self.best_epoch + 1})",
            )

    def target_reached(self, val_accuracy: float, val_loss: float) -> bool:
        """Whether one epoch's validation results meet the target rule."""
        if self.target_accuracy is None or val_accuracy < self.target_accuracy:
            return False
        return self.target_loss is None or val_loss <= self.target_loss

    def _stop(self, epoch: int, reason: str, why: str) -> None:
        self.stop_reason = reason
        self.stopped_epoch = epoch
        self.message = f"stopped after epoch {epoch + 1} by the {reason} rule: {why}"
        logger.info("%s", self.message)
        if self.model is not None:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch is not None \
                and self.model is not None:
            self.model.set_weights(self.best_weights)
            logger.info("restored the weights of epoch %d (best validation loss %.4f)", self.best_epoch + 1, self.best_loss)
