"""Populations: many runs that differ only in their seed, trained as one vectorised step.

On a GPU one small RNN leaves the device nearly idle; ``jax.jit(jax.vmap(step))`` over the
stacked Keras stateless variables of P models trains them all in one step (measured on an
H100, LSTM at T = 100: 64 models at 29x the model-steps/s of one). On a CPU the members run
one after another inside the one compiled step (``jax.lax.map``; vmap is slower per model
there): 1.1-1.3x the model-steps/s of one model alone (:func:`members_per_call`).

Each member is the run it would be alone: its own initial weights and data stream (from its
seed), its own validation set, the same Keras optimizer and clipping (the members share one
clip setting, so Keras's clipping stays exact), the same evaluation, divergence and solved
rules (``suite.core.train.decide``). The numbers agree to float rounding, not bit for bit: the
vmapped kernels round differently in the last bits (differently again for each population
size), and over thousands of steps a chaotic run can amplify that. Members are independent: one that solves or
diverges is frozen (its updates masked) and gets its steps and seconds at that evaluation;
the others go on; the population ends when every member has ended or at ``max_steps``.
Seconds are the population's training time (all members share each step's wall time), so a
population of more than one member refuses ``max_seconds``: a shared clock would stop each
member at another step than it would reach alone (train such runs alone).

Example:
    >>> configs = [TrainConfig(task="adding", seq_len=10, backend="jax", seed=s) for s in range(4)]
    >>> results = train_population(configs)                    # doctest: +SKIP
    >>> [r.status for r in results]                             # doctest: +SKIP
    ['solved', 'solved', 'unsolved', 'solved']
"""

from __future__ import annotations

import time

import numpy as np

from suite.core.steps import WINDOW_FIELDS, Window
from suite.core.train import (
    EvalRecord,
    TrainConfig,
    TrainResult,
    _batches,
    decide,
    eval_metrics,
    make_loss,
    make_optimizer,
    make_result,
)

EVAL_SAMPLES = 4096  # validation samples per vectorised predict call (all members together)


def population_key(config: TrainConfig) -> str:
    """Configs with the same key may train as one population (everything but the seed)."""
    return config.config_hash(without=("seed",))


def check_population(configs: list[TrainConfig]) -> None:
    """Raise ``ValueError`` unless ``configs`` can train as one population."""
    if not configs:
        raise ValueError("a population needs at least one config.")
    for c in configs:
        c.validate()
    if any(c.backend != "jax" for c in configs):
        raise ValueError("populations train on the JAX backend (--backend jax).")
    if len({population_key(c) for c in configs}) > 1:
        raise ValueError(
            "the members of a population differ only in their seed; got configs that differ "
            f"in more: {sorted({c.run_name for c in configs})[:4]}"
        )
    if len(configs) > 1 and configs[0].max_seconds is not None:
        raise ValueError(
            f"a population of {len(configs)} shares one clock, so max_seconds "
            f"({configs[0].max_seconds:g}) would stop each member at another step than alone; "
            "train these runs alone (--population off) or drop max_seconds."
        )
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a population's seeds must be distinct, got {seeds}.")


def split_populations(configs: list[TrainConfig], size: int) -> list[list[TrainConfig]]:
    """Group configs that differ only in seed, in chunks of at most ``size`` (order kept)."""
    groups: dict[str, list[TrainConfig]] = {}
    for c in configs:
        groups.setdefault(population_key(c), []).append(c)
    out = []
    for g in groups.values():
        out += [g[i : i + size] for i in range(0, len(g), size)]
    return out


def members_per_call(P: int, platform: str) -> int:
    """How many members one vectorised call of the population's step computes at once.

    On a GPU all of them (``jax.vmap``): one small RNN leaves the device idle. On a CPU one:
    the members run one after another inside the same compiled step (``jax.lax.map``), which
    keeps each member's working set in cache and pays the per-step dispatch once for all.
    Measured on this 2-core CPU (JAX, hidden 64, T = 100, 16 members, model-steps/s vs one
    model alone): vmap 0.77x (SimpleRNN) and 1.0x (LSTM), chunks of 4 vmapped 0.97x / 0.98x,
    one after another 1.1-1.3x / 1.3x.
    """
    return P if platform != "cpu" else 1


def _over_members(fn, chunk: int, P: int):
    """``fn`` of one member's arguments -> the same over stacked members, ``chunk`` at once."""
    import jax

    if chunk >= P:
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(
        lambda a: fn(*a), args, batch_size=None if chunk == 1 else chunk
    )


class PopulationStepper:
    """One jitted step over P models' stacked state, with a mask of live members.

    Args:
        chunk: members computed at once by one vectorised call (default
            :func:`members_per_call` for the platform JAX runs on); the rest of the
            population follows in the same compiled step.
    """

    def __init__(
        self, models, task, optimizer, loss_fn, clip, omega=0.0, chunk: int | None = None
    ) -> None:
        import jax
        import jax.numpy as jnp

        from suite.core.steps.jax_step import initial_state, member_functions

        self.models, self.task, self.P = models, task, len(models)
        if chunk is None:
            chunk = members_per_call(self.P, jax.default_backend())
        self.chunk = max(1, min(chunk, self.P))
        fns = member_functions(models[0], task, optimizer, loss_fn, clip, omega)
        self._y_dtype = fns.y_dtype
        states = [initial_state(m, optimizer) for m in models]
        self.state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        vstep = _over_members(fns.step, self.chunk, self.P)

        def masked_step(state, active, x, y):
            new = vstep(state, x, y)

            def keep(n, o):
                return jnp.where(jnp.reshape(active, (-1,) + (1,) * (n.ndim - 1)), n, o)

            return jax.tree.map(keep, new, state)

        self._step = jax.jit(masked_step, donate_argnums=0)
        self._predict = jax.jit(_over_members(fns.predict, self.chunk, self.P))
        self._profile = jax.jit(_over_members(fns.profile, self.chunk, self.P))
        self.set_active(np.ones(self.P, bool))

    def set_active(self, active: np.ndarray) -> None:
        import jax.numpy as jnp

        self._active = jnp.asarray(active)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        self.state = self._step(self.state, self._active, x, y.astype(self._y_dtype, copy=False))

    def step_streams(self, streams) -> None:
        """One step on the next batch of each member's own data stream (``_batches``)."""
        batch = [next(s) for s in streams]
        self.train_step(np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]))

    def sync(self) -> None:
        import jax

        jax.block_until_ready(self.state)

    def read_windows(self) -> list[Window]:
        from suite.core.steps.jax_step import zero_window

        values = np.stack([np.asarray(self.state["window"][k]) for k in WINDOW_FIELDS], axis=1)
        self.state["window"] = zero_window((self.P,))
        return [Window.from_values(v) for v in values]

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
        """Each member on its own validation set: ``x`` [P, N, time, features]."""
        tv, ntv = self.state["trainable"], self.state["non_trainable"]
        chunk = max(1, EVAL_SAMPLES // self.P)
        preds = np.concatenate(
            [np.asarray(self._predict(tv, ntv, x[:, i : i + chunk])) for i in range(0, x.shape[1], chunk)],
            axis=1,
        )  # fmt: skip
        out = []
        for p in range(self.P):
            m = self.task.evaluate(y[p], preds[p])
            out.append({f"val_{k}": v for k, v in m.items()})
        return out

    def profile(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = self.state
        g = self._profile(s["trainable"], s["non_trainable"], x, y.astype(self._y_dtype))
        return np.asarray(g, dtype=np.float64)  # [P, time]

    def finish(self) -> None:
        import jax

        from suite.core.steps.jax_step import write_back

        for p, model in enumerate(self.models):
            member = jax.tree.map(lambda a, p=p: a[p], self.state)
            write_back(model, None, member)


def train_population(
    configs: list[TrainConfig], callbacks: list | None = None
) -> list[TrainResult]:
    """Train configs that differ only in their seed as one population (JAX backend).

    Args:
        configs: the members (see :func:`check_population`).
        callbacks: one ``TrainCallbacks`` (or ``None``) per member, called as ``train`` would.

    Returns:
        One ``TrainResult`` per member, in order, each as ``train(config)`` would report it.
    """
    check_population(configs)
    from suite.core.backend import configure

    configure(backend="jax")
    from suite.core.models import build_model
    from tasks import get_task

    cfg, P = configs[0], len(configs)
    task = get_task(cfg.task, seq_len=cfg.seq_len, **cfg.task_options)
    models = [build_model(cfg.cell, task, hidden=cfg.hidden, seed=c.seed) for c in configs]
    stepper = PopulationStepper(
        models, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec, cfg.omega
    )
    streams = [_batches(task, cfg.batch_size, np.random.default_rng(c.seed)) for c in configs]
    vals = [task.generate(cfg.val_size, np.random.default_rng(c.seed + 10**6)) for c in configs]
    x_val, y_val = np.stack([v[0] for v in vals]), np.stack([v[1] for v in vals])
    px, py = x_val[:, : cfg.profile_size], y_val[:, : cfg.profile_size]
    cbs = list(callbacks) if callbacks else [None] * P
    for c, cb, model in zip(configs, cbs, models, strict=True):
        if cb:
            cb.on_start(c, task, model)

    active = np.ones(P, bool)
    ended: list[tuple[str, str] | None] = [None] * P
    end = [(0, 0.0)] * P
    histories: list[list[EvalRecord]] = [[] for _ in range(P)]
    last_val: list[dict] = [{} for _ in range(P)]
    step, train_seconds = 0, 0.0
    while step < cfg.max_steps and active.any():
        n = min(cfg.eval_every, cfg.max_steps - step)
        t0 = time.perf_counter()
        for _ in range(n):
            stepper.step_streams(streams)
        stepper.sync()
        train_seconds += time.perf_counter() - t0
        step += n

        windows = stepper.read_windows()
        val = stepper.evaluate(x_val, y_val)
        prof = stepper.profile(px, py)
        for p in np.flatnonzero(active):
            if cbs[p]:
                cbs[p].on_steps(step)
            metrics = eval_metrics(
                windows[p], val[p], prof[p], task.baseline_loss, omega=cfg.omega > 0, task=task
            )
            record = EvalRecord(step, train_seconds, metrics, prof[p].tolist())
            histories[p].append(record)
            last_val[p] = val[p]
            end[p] = (step, train_seconds)
            if cbs[p]:
                cbs[p].on_eval(record)
            ended[p] = decide(configs[p], task, record, windows[p])
            if ended[p]:
                active[p] = False  # frozen: its state stays as at this evaluation
        stepper.set_active(active)

    stepper.finish()
    return [
        make_result(task, ended[p], end[p][0], end[p][1], histories[p], last_val[p], models[p])
        for p in range(P)
    ]
