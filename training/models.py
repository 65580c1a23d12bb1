"""Model presets: the networks ``genreslice train --model`` can build, each with the settings it was designed with.

One entry of :data:`PRESETS` holds a preset's builder *and* its defaults (optimizer, learning rate, batch
size), so adding a preset is adding one entry; ``tests/training/test_models.py`` builds, trains, saves and loads
every entry. Importable without TensorFlow: the command line lists the presets before it loads Keras, which the
builders import when they run.

Every builder takes ``(n_classes, slice_size, *, width, l2)``. Its input is a batch of ``(slice_size, slice_size,
1)`` slices, gray level / 255 in ``[0, 1]`` (see :func:`genreslice.pipeline.png.to_model_input`); rows are
frequency, the last row the lowest, and columns are time. Its output is a softmax over the classes; built for a
multi-label data set (``multilabel=True``), the same network ends in a sigmoid per tag instead, trained with binary
cross-entropy and scored with macro ROC-AUC (the ``roc_auc`` metric, Keras's ``AUC(multi_label=True)``).

* ``width`` multiplies the number of filters of every convolution and the units of every recurrent layer
  (``max(1, round(n * width))``, see :func:`scaled`), so a filter sweep is a loop of training runs; dense layers
  keep their size unless they are sized by the convolutions (shortres).
* ``l2`` adds an L2 penalty of that factor on the kernels of every convolution, dense and recurrent layer
  (the input kernels of the recurrent ones), except the fixed DCT of the MFCC presets; 0 adds none, and the
  network is then exactly the one built before these options existed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from genreslice.errors import ParameterError

if TYPE_CHECKING:
    from genreslice.training.tf_modules import keras

#: The optimizers a preset may name, and the ``keras.optimizers`` class of each (as help text spells it too).
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop"}
#: Cepstral coefficients the MFCC presets keep: the course's ``num_mfcc=13``, the usual choice for timbre.
N_MFCC = 13
#: Batch normalization of the new presets: the momentum of its moving statistics (PyTorch's default 0.1 in
#: Keras's terms, instead of Keras's 0.99), and the moving variance starting at 0 instead of 1. Training
#: normalizes with each batch's statistics, inference with the moving ones; with Keras's defaults those need
#: hundreds of steps to match. After a ReLU most channels have variances of 1e-7 to 1e-3 (the 1e-3 epsilon then
#: sets the scale), so a moving variance that starts at 1 scales them 10 times too small for hundreds of steps
#: and the network answers one genre whatever it hears: on a demo-sized data set (a few steps per epoch) the
#: dance and CRNN networks reached a training accuracy of 1.0 while validation stayed at chance for 12 epochs,
#: the reason ``compact`` has no batch normalization. Starting from 0, the moving variance after ``n`` steps is
#: ``1 - 0.9 ** n`` of the batches' whatever their size (65% after 10 steps), and the same networks learn the
#: demo corpus in a few epochs (``tests/training/test_presets_learn.py``).
BN_MOMENTUM = 0.9
BN_MOVING_VARIANCE_START = "zeros"


def _batch_norm(*, name: str):
    """A batch normalization of the new presets: momentum :data:`BN_MOMENTUM`, and the moving variance starting at
    0 rather than Keras's 1 (see :data:`BN_MOMENTUM`)."""
    from keras import layers

    return layers.BatchNormalization(momentum=BN_MOMENTUM, moving_variance_initializer=BN_MOVING_VARIANCE_START,
                                     name=name)


def scaled(n: int, width: float) -> int:
    """``n`` filters or units at ``width``: ``max(1, round(n * width))`` (Python's rounding, half to even)."""
    return max(1, round(n * width))


class _Layers:
    """Makes the layers of one network with the run's ``width`` and ``l2``: convolutions and recurrent layers get
    :func:`scaled` sizes, and every kernel the L2 penalty (none for ``l2=0``: Keras's own default)."""

    def __init__(self, width: float, l2: float) -> None:
        from keras import regularizers

        self.width = width
        self.regularizer = regularizers.L2(l2) if l2 else None

    def penalty(self, fixed: float | None = None):
        """The kernel regularizer: the run's, or an L2 of ``fixed`` that the source network itself had."""
        from keras import regularizers

        return regularizers.L2(fixed) if fixed else self.regularizer

    def conv(self, filters: int, kernel, *, fixed_l2: float | None = None, **options):
        from keras import layers

        return layers.Conv2D(scaled(filters, self.width), kernel, kernel_regularizer=self.penalty(fixed_l2),
                             **options)

    def dense(self, units: int, *, fixed_l2: float | None = None, **options):
        from keras import layers

        return layers.Dense(units, kernel_regularizer=self.penalty(fixed_l2), **options)

    def recurrent(self, kind: str, units: int, **options):
        from keras import layers

        return getattr(layers, kind)(scaled(units, self.width), kernel_regularizer=self.regularizer, **options)


def _dense_head(x, make: _Layers, n_classes: int, *, units: int, activation: str, dropout: float,
                flatten: bool = True):
    """[Flatten,] Dense ``units`` (``activation``), Dropout and the softmax over the classes (layers ``flatten``,
    ``dense``, ``dropout``, ``genre``): the end of despoisj's and the course's networks."""
    from keras import layers

    if flatten:
        x = layers.Flatten(name="flatten")(x)
    x = make.dense(units, activation=activation, name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return make.dense(n_classes, activation="softmax", name="genre")(x)


def build_despoisj(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """The network of despoisj/DeepAudioClassification, the method genreslice descends from (README: How it works).

    Four blocks of Conv2D (2x2 kernel, 'same' padding as tflearn's default; 64, 128, 256, 512 filters; ELU,
    Xavier initialisation) each followed by 2x2 max-pooling, then Flatten, Dense 1024 (ELU), Dropout 0.5 and
    a softmax over the classes. On 128x128 slices the dense layer alone has 32768 x 1024 weights (about
    34.2 M parameters in all).
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for filters in (64, 128, 256, 512):
        x = make.conv(
            filters, 2, padding="same", activation="elu", kernel_initializer="glorot_normal", name=f"conv_{filters}"
        )(x)
        x = layers.MaxPooling2D(2, name=f"pool_{filters}")(x)
    outputs = _dense_head(x, make, n_classes, units=1024, activation="elu", dropout=0.5)
    return keras.Model(inputs, outputs, name="despoisj")


def build_compact(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """A small network that trains in minutes on a laptop CPU (about 135 k parameters).

    Five blocks of 3x3 Conv2D + ReLU + 2x2 max-pooling (16, 32, 64, 64, 128 filters), then global average
    pooling instead of a huge dense layer, Dropout 0.3 and a softmax. No batch normalization: with the few
    hundred steps of a small data set its moving statistics lag behind the weights, and validation accuracy
    stayed at chance in our trials while the same network without it reached 100% in three epochs.
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for block, filters in enumerate((16, 32, 64, 64, 128), start=1):
        x = make.conv(filters, 3, padding="same", activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.GlobalAveragePooling2D(name="average")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = make.dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="compact")


def build_dance(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """The Keras network of the dance-style recogniser MineTech0/tekoaly-harjoitustyo (its ``peer_model``).

    Read from its notebook (``src/peer_model/peer_model.ipynb``), which trains on 64-band mel spectrograms with
    time along the columns, as our slices: Conv2D 64 (4x4, ReLU, 'valid') + batch normalization + max-pooling
    2x4 (frequency x time); Conv2D 32 (3x5, ReLU) + max-pooling 2x2 + Dropout 0.2; Conv2D 32 (2x2, ReLU) + batch
    normalization + max-pooling 2x2 + Dropout 0.2; Flatten, Dense 64 (ReLU) + Dropout 0.5, Dense 32 (ReLU) and
    the softmax. The original puts an L2 penalty of 0.04 on the kernels of the second convolution and of the two
    hidden dense layers; they keep it here (it is part of the published network), and ``l2`` regularises the
    other kernels. Adam at Keras's default 1e-3 and batch 32 (its ``fit`` defaults), as the original.
    On 128x128 slices with 4 classes: 210,660 parameters (the flattened 14x6x32 map feeds Dense 64). Batch
    normalization as :data:`BN_MOMENTUM` says (with Keras's defaults, as the original, it stayed at chance on the
    demo corpus).
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = make.conv(64, (4, 4), activation="relu", name="conv1")(inputs)
    x = _batch_norm(name="bn1")(x)
    x = layers.MaxPooling2D((2, 4), name="pool1")(x)
    x = make.conv(32, (3, 5), activation="relu", fixed_l2=0.04, name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.2, name="dropout2")(x)
    x = make.conv(32, (2, 2), activation="relu", name="conv3")(x)
    x = _batch_norm(name="bn3")(x)
    x = layers.MaxPooling2D(2, name="pool3")(x)
    x = layers.Dropout(0.2, name="dropout3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = make.dense(64, activation="relu", fixed_l2=0.04, name="dense1")(x)
    x = layers.Dropout(0.5, name="dropout_dense")(x)
    x = make.dense(32, activation="relu", fixed_l2=0.04, name="dense2")(x)
    outputs = make.dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="dance")


def dct_matrix(n_bins: int, n_coefficients: int) -> np.ndarray:
    """The orthonormal DCT-II over the rows of a slice, as a ``(n_bins, n_coefficients)`` ``float32`` matrix.

    Row ``r`` of a slice is frequency band ``n = n_bins - 1 - r`` (the last row is the lowest band), so
    ``column @ dct_matrix(...)`` equals ``scipy.fft.dct(column[::-1], type=2, norm="ortho")[:n_coefficients]``:
    coefficient ``k`` is ``c_k * sum_n x_n * cos(pi * k * (n + 1/2) / n_bins)`` with ``c_0 = sqrt(1 / n_bins)``
    and ``c_k = sqrt(2 / n_bins)``.
    """
    if not 1 <= n_coefficients <= n_bins:
        raise ParameterError(f"n_coefficients={n_coefficients} must be between 1 and n_bins={n_bins}")
    band = np.arange(n_bins)[::-1, None] + 0.5
    matrix = np.cos(np.pi * band * np.arange(n_coefficients)[None, :] / n_bins) * np.sqrt(2.0 / n_bins)
    matrix[:, 0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def _cepstrum(inputs, slice_size: int):
    """The MFCC presets' first layers: each column (time frame) of the slice through a fixed DCT-II of its rows.

    A mel slice's gray level is a linear function of dB, so its DCT is an affine function of the frame's MFCCs:
    coefficient 0 gains a constant, the others are the MFCCs times a constant. On SoX's linear-frequency slices
    the same layer gives a linear-frequency cepstrum. The DCT is a Dense layer without bias whose kernel is
    :func:`dct_matrix`, not trainable: a plain Keras layer, so ``model.keras`` loads anywhere without custom
    objects. Returns ``(time frames, coefficients)`` per slice.
    """
    from keras import layers

    x = layers.Reshape((slice_size, slice_size), name="frames")(inputs)
    x = layers.Permute((2, 1), name="time_major")(x)  # (time, frequency rows)
    n_coefficients = min(N_MFCC, slice_size)
    dct = layers.Dense(n_coefficients, use_bias=False, trainable=False, kernel_initializer="zeros", name="dct")
    x = dct(x)
    dct.set_weights([dct_matrix(slice_size, n_coefficients)])
    return x


def build_mfcc_cnn(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """The MFCC CNN of Valerio Velardo's course "Deep Learning for Audio with Python" (musikalkemist/
    DeepLearningForAudioWithPython, lesson 16, ``cnn_genre_classifier.py``), on the slice's cepstrum.

    The course feeds ``(frames, 13 MFCCs, 1)`` images; here the fixed DCT of :func:`_cepstrum` makes them from the
    slice (13 coefficients, the course's ``num_mfcc``). Then, as the course: Conv2D 32 (3x3, ReLU) + max-pooling
    3x3 stride 2 'same' + batch normalization; the same again; Conv2D 32 (2x2, ReLU) + max-pooling 2x2 stride 2
    'same' + batch normalization; Flatten, Dense 64 (ReLU), Dropout 0.3 and the softmax; Adam 1e-4, batch 32.
    Batch normalization as :data:`BN_MOMENTUM` says. On 128x128 slices with 4 classes: 46,788 parameters (the
    DCT's 1,664 and batch normalization's 192 statistics are not trained).
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = _cepstrum(inputs, slice_size)
    x = layers.Reshape((slice_size, x.shape[-1], 1), name="mfcc_image")(x)
    for block, (kernel, pool) in enumerate(((3, 3), (3, 3), (2, 2)), start=1):
        x = make.conv(32, kernel, activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(pool, strides=2, padding="same", name=f"pool{block}")(x)
        x = _batch_norm(name=f"bn{block}")(x)
    outputs = _dense_head(x, make, n_classes, units=64, activation="relu", dropout=0.3)
    return keras.Model(inputs, outputs, name="mfcc_cnn")


def build_mfcc_lstm(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """The MFCC RNN-LSTM of the same course (lesson 19, ``lstm_genre_classifier.py``), on the slice's cepstrum.

    The fixed DCT of :func:`_cepstrum` turns each time frame into 13 coefficients; then LSTM 64 over the frames
    (returning the sequence), LSTM 64, Dense 64 (ReLU), Dropout 0.3 and the softmax; Adam 1e-4, batch 32, as
    the course. On 128x128 slices with 4 classes: 59,076 parameters (the DCT's 1,664 are not trained).
    """
    from genreslice.training.tf_modules import keras

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = _cepstrum(inputs, slice_size)
    x = make.recurrent("LSTM", 64, return_sequences=True, name="lstm1")(x)
    x = make.recurrent("LSTM", 64, name="lstm2")(x)
    outputs = _dense_head(x, make, n_classes, units=64, activation="relu", dropout=0.3, flatten=False)
    return keras.Model(inputs, outputs, name="mfcc_lstm")


def _crnn_pools(slice_size: int) -> list[tuple[int, int]]:
    """(frequency, time) max-pooling of the CRNN's four blocks: frequency 4, 4, 4, 2 (128 rows to 1), fewer for
    smaller slices; time 2 per block while at least 2 frames are left (128 columns to 8 frames)."""
    exponents = [2, 2, 2, 1]
    available = max(0, int(np.log2(slice_size)))
    while sum(exponents) > available:
        exponents[max(i for i, e in enumerate(exponents) if e == max(exponents))] -= 1
    pools, frames = [], slice_size
    for exponent in exponents:
        time = 2 if frames >= 2 else 1
        frames //= time
        pools.append((2 ** exponent, time))
    return pools


def build_crnn(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """The convolutional recurrent network of Choi, Fazekas, Sandler and Cho (2017), "Convolutional recurrent
    neural networks for music classification" (ICASSP; https://arxiv.org/abs/1609.04243), at a small size.

    As the authors' Keras code (keunwoochoi/music-auto_tagging-keras, ``music_tagger_crnn.py``): four blocks of
    3x3 Conv2D ('same') + batch normalization + ELU + max-pooling + Dropout 0.1 that pool the frequency axis down
    to 1, then GRU 32 over the
    frames (returning the sequence), GRU 32, Dropout 0.3 and a softmax (the paper's tagger has 50 sigmoids). The
    filters are 32, 64, 64, 64, near the paper's smallest (0.1 M parameter) setting rather than the code's
    64/128/128/128 (0.4 M): 109,444 parameters on 128x128 slices with 4 classes. The pooling (frequency x time) is
    4x2, 4x2, 4x2, 2x2 on 128x128 slices (128 rows to 1, 128 columns to 8 frames; see :func:`_crnn_pools`): the
    code's 2x2, 3x3, 4x4, 4x4 suits its 96 x 1366 input, and pooling frequency early keeps the widest
    convolutions on small maps (a third of the work). Optimizer: Adam, 1e-3 and batch 32 (Keras's defaults; not
    taken from the paper). Batch normalization as :data:`BN_MOMENTUM` says.
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for block, (filters, pool) in enumerate(zip((32, 64, 64, 64), _crnn_pools(slice_size)), start=1):
        x = make.conv(filters, 3, padding="same", name=f"conv{block}")(x)
        x = _batch_norm(name=f"bn{block}")(x)
        x = layers.Activation("elu", name=f"elu{block}")(x)
        x = layers.MaxPooling2D(pool, name=f"pool{block}")(x)
        x = layers.Dropout(0.1, name=f"dropout{block}")(x)
    if x.shape[1] > 1:  # a slice size that is not a power of two leaves some rows: their maximum
        x = layers.MaxPooling2D((x.shape[1], 1), name="pool_rest")(x)
    x = layers.Reshape((x.shape[2], x.shape[3]), name="frames")(x)
    x = make.recurrent("GRU", 32, return_sequences=True, name="gru1")(x)
    x = make.recurrent("GRU", 32, name="gru2")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = make.dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="crnn")


#: Channels of the short-chunk ResNet's first blocks at width 1; the paper uses 128.
SHORTRES_CHANNELS = 32


def _residual_block(x, make: _Layers, filters: int, name: str):
    """Won et al.'s ``Res_2d``: two 3x3 convolutions with batch normalization, the first of stride 2, added to a
    stride-2 3x3 convolution + batch normalization of the input (the authors' projection), then ReLU."""
    from keras import layers

    def normalized(tensor, suffix):  # PyTorch's BatchNorm2d momentum 0.1 is Keras's 0.9
        return _batch_norm(name=f"{name}_bn{suffix}")(tensor)

    out = make.conv(filters, 3, strides=2, padding="same", name=f"{name}_conv1")(x)
    out = layers.Activation("relu", name=f"{name}_relu1")(normalized(out, 1))
    out = normalized(make.conv(filters, 3, padding="same", name=f"{name}_conv2")(out), 2)
    shortcut = normalized(make.conv(filters, 3, strides=2, padding="same", name=f"{name}_projection")(x), 3)
    return layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([shortcut, out]))


def build_shortres(n_classes: int, slice_size: int = 128, *, width: float = 1.0, l2: float = 0.0) -> keras.Model:
    """The short-chunk ResNet of Won, Ferraro, Bogdanov and Serra (2020), "Evaluation of CNN-based automatic
    music tagging models" (SMC; https://arxiv.org/abs/2006.00751), at a CPU-friendly width.

    As the authors' code (minzwon/sota-music-tagging-models, ``ShortChunkCNN_Res``): batch normalization of the
    input, then residual blocks (:func:`_residual_block`) that halve both axes, as many as the slice allows up to
    the paper's 7 (7 on 128 rows, 5 on 32), with c, c, 2c, 2c, 2c, 2c, 4c channels; a global max-pooling of what
    is left (1x1 on 128x128), Dense 4c + batch normalization + ReLU + Dropout 0.5 and a softmax (the paper's
    tagger has sigmoids). The paper downsamples with the stride-2 convolutions rather than max-pooling, and
    projects the shortcut with a 3x3 convolution: kept. c is 32 at width 1 (the paper: 128, 16 times the
    parameters and about 16 times the work): 762,120 parameters on 128x128 slices with 4 classes. Adam 1e-4,
    batch 16, as the authors' ``main.py``. Batch normalization as :data:`BN_MOMENTUM` says (its momentum is
    PyTorch's default, which the authors trained with).
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    make = _Layers(width, l2)
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = _batch_norm(name="input_bn")(inputs)
    blocks = max(1, min(7, int(np.log2(slice_size))))
    c = SHORTRES_CHANNELS
    for block, filters in enumerate((c, c, 2 * c, 2 * c, 2 * c, 2 * c, 4 * c)[:blocks], start=1):
        x = _residual_block(x, make, filters, f"block{block}")
    x = layers.GlobalMaxPooling2D(name="max")(x)
    x = make.dense(x.shape[-1], name="dense")(x)
    x = _batch_norm(name="dense_bn")(x)
    x = layers.Activation("relu", name="dense_relu")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    outputs = make.dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="shortres")


@dataclass(frozen=True)
class ModelPreset:
    """A network and the training settings it was designed with.

    Attributes
    ----------
    name : str
        What ``--model`` calls it.
    builder : callable
        ``builder(n_classes, slice_size, *, width, l2)`` returns the uncompiled network, whose input is a batch of
        ``(slice_size, slice_size, 1)`` slices and whose output is a softmax over ``n_classes``.
    optimizer : str
        One of :data:`OPTIMIZERS`.
    learning_rate : float
        The optimizer's learning rate when ``--learning-rate`` is not given.
    batch_size : int
        Slices per step (per device) when ``--batch-size`` is not given.
    about : str
        What the network is, in a few words; :attr:`description` adds the settings.
    min_slice_size : int
        The smallest slice (a power of two, as the build's) its layers leave something of.
    """

    name: str
    builder: Callable[..., keras.Model]
    optimizer: str
    learning_rate: float
    batch_size: int
    about: str
    min_slice_size: int = 16

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(f"optimizer={self.optimizer!r} must be one of {', '.join(OPTIMIZERS)}")

    @property
    def description(self) -> str:
        """One line for ``genreslice train --help``: :attr:`about`, then the optimizer, learning rate and batch."""
        mantissa, exponent = f"{self.learning_rate:e}".split("e")
        rate = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{self.about} ({OPTIMIZERS[self.optimizer]} {rate}, batch {self.batch_size})"

    def build(self, n_classes: int, *, slice_size: int = 128, learning_rate=None, width: float = 1.0,
              l2: float = 0.0, multilabel: bool = False) -> keras.Model:
        """The network, compiled with this preset's optimizer.

        Parameters
        ----------
        learning_rate : float or keras.optimizers.schedules.LearningRateSchedule, optional
            The optimizer's rate, or a schedule of it (see :func:`learning_rate_schedule`); None: the preset's.
        width, l2 : float
            See the module's documentation.
        multilabel : bool
            A sigmoid per class (tag) in place of the softmax, binary cross-entropy, and the ``roc_auc`` metric
            beside ``accuracy`` (which is then the fraction of (slice, tag) pairs right at 0.5).
            Keras's AUC counts a tag without positive (or without negative) slices as 0 in its average: such tags
            lower it by the same amount every epoch. (Its ``label_weights``, which could leave them out, do not
            survive saving and loading the model in Keras 3.)
        """
        from genreslice.training.tf_modules import keras

        if slice_size < self.min_slice_size:
            raise ParameterError(f"slice_size={slice_size} is too small for the {self.name} network: it needs slices "
                                 f"of at least {self.min_slice_size} pixels")
        model = self.builder(n_classes, slice_size, width=width, l2=l2)
        rate = self.learning_rate if learning_rate is None else learning_rate
        optimizer = getattr(keras.optimizers, OPTIMIZERS[self.optimizer])(rate)
        if not multilabel:
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model
        output = model.layers[-1]
        if not isinstance(output, keras.layers.Dense) or output.activation is not keras.activations.softmax:
            raise ValueError(f"the {self.name} network must end in a Dense softmax layer to be made multi-label. "
                             f"Received: {type(output).__name__} {output.name!r}")
        # Dense applies its activation when called, and saves its name: the network is the same but for it.
        output.activation = keras.activations.sigmoid
        model.compile(optimizer=optimizer, loss="binary_crossentropy",
                      metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                               keras.metrics.AUC(multi_label=True, num_thresholds=200, name="roc_auc")])
        return model


#: The presets by name.
PRESETS: dict[str, ModelPreset] = {preset.name: preset for preset in (
    ModelPreset(
        name="compact", builder=build_compact, optimizer="adam", learning_rate=1e-3, batch_size=64,
        about="small CNN with global average pooling, 135 k parameters; minutes on a CPU", min_slice_size=32,
    ),
    ModelPreset(
        name="despoisj", builder=build_despoisj, optimizer="rmsprop", learning_rate=1e-3, batch_size=128,
        about="DeepAudioClassification's 4-block CNN with a 1024-unit dense layer, 34.2 M parameters",
    ),
    ModelPreset(
        name="dance", builder=build_dance, optimizer="adam", learning_rate=1e-3, batch_size=32,
        about="a dance-style recogniser's CNN: 3 convolutions with batch normalization, 3 dense layers, "
              "211 k parameters",
        min_slice_size=64,
    ),
    ModelPreset(
        name="mfcc_cnn", builder=build_mfcc_cnn, optimizer="adam", learning_rate=1e-4, batch_size=32,
        about="Velardo's course CNN on 13 cepstral coefficients per frame (a fixed DCT of the slice's rows; MFCCs "
              "on mel slices), 47 k parameters",
    ),
    ModelPreset(
        name="mfcc_lstm", builder=build_mfcc_lstm, optimizer="adam", learning_rate=1e-4, batch_size=32,
        about="Velardo's course LSTM (2 x 64 units) over 13 cepstral coefficients per frame, 59 k parameters",
    ),
    ModelPreset(
        name="crnn", builder=build_crnn, optimizer="adam", learning_rate=1e-3, batch_size=32,
        about="Choi et al. 2017 CRNN: 4 convolution blocks, then 2 GRU layers over time, 109 k parameters",
    ),
    ModelPreset(
        name="shortres", builder=build_shortres, optimizer="adam", learning_rate=1e-4, batch_size=16,
        about="Won et al. 2020 short-chunk ResNet (7 residual blocks, 32-128 channels), 762 k parameters",
    ),
)}


def build_model(name: str, n_classes: int, *, slice_size: int = 128, learning_rate=None, width: float = 1.0,
                l2: float = 0.0, multilabel: bool = False) -> keras.Model:
    """Build and compile the network of preset ``name`` (see :meth:`ModelPreset.build`).

    Labels are class indices (sparse categorical cross-entropy); the reported metric is ``accuracy``. With
    ``multilabel``, labels are multi-hot rows (binary cross-entropy), and ``roc_auc`` is reported too.

    Raises
    ------
    ParameterError
        Unknown preset name, fewer than 2 classes, slices too small for the network, a width that is not positive
        or a negative ``l2``.
    """
    if name not in PRESETS:
        raise ParameterError(f"model={name!r} is not one of {', '.join(sorted(PRESETS))}")
    if n_classes < 2:
        raise ParameterError(f"n_classes={n_classes} must be at least 2 to train a classifier")
    if not (np.isfinite(width) and width > 0):
        raise ParameterError(f"width={width} must be a positive number")
    if not (np.isfinite(l2) and l2 >= 0):
        raise ParameterError(f"l2={l2} must be 0 or more")
    return PRESETS[name].build(n_classes, slice_size=slice_size, learning_rate=learning_rate, width=width, l2=l2,
                               multilabel=multilabel)


def learning_rate_schedule(kind: str, rate: float, *, total_steps: int):
    """What the optimizer is given for the ``--lr-schedule`` ``kind``: ``rate`` itself for ``constant`` and
    ``plateau`` (whose callback lowers it, see :class:`genreslice.training.callbacks.PlateauSchedule`), or for
    ``cosine`` Keras's ``CosineDecay`` from ``rate`` to 0 over ``total_steps`` optimizer steps (a function of the
    optimizer's step count, which the checkpoints keep, so a resumed run continues the same curve).
    """
    if kind == "cosine":
        from genreslice.training.tf_modules import keras

        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(1, int(total_steps)), alpha=0.0)
    return rate
