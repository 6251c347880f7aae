"""tvq: a literate, executable reproduction of TimeVQVDM.

Modules, one job each: :mod:`tvq.data` (UCR archive), :mod:`tvq.config` (typed parameters),
:mod:`tvq.spectral` (STFT and LF/HF split), :mod:`tvq.vqvae` (stage 1),
:mod:`tvq.diffusion` (VDM maths), :mod:`tvq.unet` (1-D U-Net), :mod:`tvq.sampling`
(Algorithms 3-4), :mod:`tvq.model` (TimeVQVDM), :mod:`tvq.train` (training),
:mod:`tvq.fcn` and :mod:`tvq.metrics` (evaluation), :mod:`tvq.cli` (the ``tvq`` command).
"""
__version__ = "0.1.0"
