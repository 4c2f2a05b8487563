"""One model trained: the Keras backend (``backend``), the cells (``models``), clipping as Keras
names it (``clipping``), the train step per backend (``steps``), the training loop (``train``)
and populations of models trained as one vectorised step (``population``)."""
