"""Measured data for steering: :class:`Observations` (tidy rows, per-subject times, doses, covariates).

How to use it (calibration, posteriors and optimisation all start here):

1. **Build observations** from tidy rows, one per ``(subject, time, observable, value)``::

       obs = Observations.from_dataframe(frame, "theophylline", columns={"subject": "Subject",
                                         "time": "Time"}, observables=("conc",),
                                         observe=system.concentration, covariates=("Wt", "Dose"),
                                         initial=lambda row: (row["Dose"] * row["Wt"], 0.0))

   (``from_csv`` and ``from_xarray`` take the same keywords; a frame without an ``observable``
   column is "wide": its columns named in ``observables`` are the values). Every subject has its
   own irregular times, its own start time ``t0`` (the dose time, default 0) and initial state
   ``x0`` (``initial``: a function of the subject's covariates, a mapping subject → state, an
   array ``(subject, dim)``, or ``None`` for the system's ``default_x0``). ``observe(x, p)`` maps
   states ``(batch, time, dim)`` and parameters ``(batch, n_params)`` to observables
   ``(batch, time, n_observables)``; without it the observables must be state names.
   For the Theoph data, :func:`flowsim.steer.theoph_observations` does all of this.
2. **The padded view** a :class:`~flowsim.steer.Predictor` takes: :meth:`Observations.padded`
   gives ``x0 (S, dim)``, ``t0 (S,)``, ``times (S, T)`` (ragged rows padded with the subject's
   last time), ``values (S, T, K)`` and ``mask (S, T, K)`` (``True`` where measured).
3. **The log-likelihood of a batch of parameter vectors** (:func:`flowsim.steer.log_likelihood`,
   or :class:`flowsim.steer.LogLikelihood` built once and called many times, e.g. by an emcee
   ensemble with ``vectorize=True``)::

       ll = LogLikelihood(model, obs, params=("ka", "ke", "V"), noise=Noise("gaussian", sigma=0.5))
       ll(theta)   # theta (batch, 3): shared by all subjects -> (batch,)
       ll(theta)   # theta (batch, S, 3): one vector per subject  -> (batch,) summed over subjects
       ll.per_subject(theta)                                   # -> (batch, S)

   ``model`` is a flow map (one jump from ``t0`` to every observation time, one network call for
   the whole batch), a system / catalogue name (the differentiable torchdiffeq reference) or a
   :class:`~flowsim.steer.Predictor`. ``params`` names theta's columns, in order: system
   parameter names (``system.param_names``; Theoph: ``ka``, ``ke``, ``V``) and initial states as
   ``"x0.<state>"``; the others stay at ``fixed`` (default: the system's defaults). Parameters
   outside the map's trained range are refused (``on_outside="raise"``), warned about
   (``"warn"``) or given a log-likelihood of ``-inf`` without being evaluated (``"-inf"``: what
   a sampler wants). The result is float64 and differentiable in theta.

Examples
--------
>>> import pandas as pd, flowsim
>>> frame = pd.DataFrame({"subject": ["a", "a", "b"], "time": [1.0, 2.0, 1.5],
...                       "observable": ["q", "q", "q"], "value": [0.6, 0.4, 0.5]})
>>> obs = flowsim.steer.Observations(frame, "harmonic_oscillator")
>>> obs.subjects, obs.observables
(('a', 'b'), ('q',))
>>> obs.padded().times
tensor([[1.0000, 2.0000],
        [1.5000, 1.5000]], dtype=torch.float64)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError, TimeGridError
from ..systems.base import ODESystem
from ..systems.registry import get_system
from .table_checks import check_rows, covariate_table, pandas, require_columns

__all__ = ["Observations", "PaddedObservations"]

ROLES = ("subject", "time", "observable", "value")


class PaddedObservations(NamedTuple):
    """The tensor view of :class:`Observations` (float64 unless asked otherwise).

    Examples
    --------
    >>> import flowsim
    >>> pad = flowsim.steer.theoph_observations().padded()
    >>> pad.x0.shape, pad.times.shape, pad.mask.dtype
    (torch.Size([12, 2]), torch.Size([12, 11]), torch.bool)
    """

    x0: Tensor        #: (S, dim) initial states at t0
    t0: Tensor        #: (S,) start (dose) times
    times: Tensor     #: (S, T) observation times, ragged rows padded with the row's last time
    values: Tensor    #: (S, T, K) measured values (0 where not measured)
    mask: Tensor      #: (S, T, K) bool, True where measured


class Observations:
    """Measured data of one system: per-subject times, observables, start states and covariates.

    Arguments
    ---------
    frame:
        A pandas DataFrame in tidy form with columns ``subject``, ``time``, ``observable``,
        ``value`` (use :meth:`from_dataframe` to rename columns or read a wide table).
    system:
        The :class:`~flowsim.ODESystem` (or catalogue name) that generated the data.
    observe:
        ``observe(x, p) -> (batch, time, K)`` from states ``(batch, time, dim)`` and
        parameters ``(batch, n_params)``; ``None``: the observables are states, by name.
    observables:
        Names of the K observables, in ``observe``'s output order (default: those in the data,
        which must then be state names).
    initial:
        Each subject's state at ``t0``: a function of its covariates (a dict) returning
        ``dim`` numbers, a mapping subject → state, an array ``(subject, dim)``, or ``None``
        (the system's ``default_x0``).
    t0:
        Start (dose) time: a number, or a mapping subject → number.
    covariates:
        Columns of ``frame`` constant within each subject (e.g. body weight), kept in
        :attr:`covariates` and passed to ``initial``.

    Raises
    ------
    DataError
        Missing columns, NaN or infinite values, duplicated samples, covariates that vary within
        a subject, unknown subjects or observables.
    TimeGridError
        Negative times, times before the subject's ``t0``, or times not increasing within a
        subject and observable (sort the rows by time).

    Examples
    --------
    >>> import pandas as pd, flowsim
    >>> frame = pd.DataFrame({"subject": [1, 1], "time": [0.5, 1.0], "observable": ["q", "q"],
    ...                       "value": [0.9, 0.5]})
    >>> flowsim.steer.Observations(frame, "harmonic_oscillator", initial={1: (1.0, 0.0)}).x0
    tensor([[1., 0.]], dtype=torch.float64)
    """

    def __init__(self, frame: Any, system: ODESystem | str, *,
                 observe: Callable[[Tensor, Tensor], Tensor] | None = None,
                 observables: Sequence[str] | None = None, initial: Any = None,
                 t0: float | Mapping[Any, float] = 0.0, covariates: Sequence[str] = ()) -> None:
        pd = pandas()
        self.system = get_system(system) if isinstance(system, str) else system
        if not isinstance(self.system, ODESystem):
            raise ConfigError(f"system must be an ODESystem or a catalogue name; got {type(system).__name__}")
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"observations must be a pandas DataFrame; got {type(frame).__name__} (use "
                            "Observations.from_csv / from_xarray for files and datasets)")
        covariates = (covariates,) if isinstance(covariates, str) else tuple(covariates)
        require_columns(frame, ROLES + covariates)
        frame = frame[list(ROLES + covariates)].copy()
        frame["subject"] = frame["subject"].astype(str)
        frame["observable"] = frame["observable"].astype(str)
        for col in ("time", "value"):
            try:
                frame[col] = frame[col].astype(np.float64)
            except (TypeError, ValueError):
                raise DataError(f"column {col!r} must hold numbers; got {frame[col].dtype}") from None
        self.subjects: tuple[str, ...] = tuple(dict.fromkeys(frame["subject"]))
        if not self.subjects:
            raise DataError("the observations are empty: give at least one row")
        self.observables: tuple[str, ...] = self._observables(frame, observables, observe)
        self.observe = observe if observe is not None else self._state_selector()
        self.t0 = self._t0(t0)
        check_rows(frame, dict(zip(self.subjects, self.t0.tolist())))
        self.covariates = covariate_table(frame, covariates, self.subjects)
        self.x0 = self._initial(initial)
        order = {s: i for i, s in enumerate(self.subjects)}
        self.frame = (frame.assign(_o=frame["subject"].map(order))
                      .sort_values(["_o", "time", "observable"], kind="stable")
                      .drop(columns="_o").reset_index(drop=True))
        self._padded: PaddedObservations | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataframe(cls, frame: Any, system: ODESystem | str, *,
                       columns: Mapping[str, str] | None = None, **kwargs: Any) -> Observations:
        """Observations from a DataFrame whose columns may have other names (``columns`` maps
        the roles ``subject``, ``time``, ``observable``, ``value`` to them) or be wide (no
        observable column: the columns named in ``observables=`` hold the values). Other
        keywords as for :class:`Observations`.

        Examples
        --------
        >>> import pandas as pd, flowsim
        >>> wide = pd.DataFrame({"id": [1, 1], "t": [0.5, 1.0], "q": [0.9, 0.5], "v": [-0.4, -0.8]})
        >>> obs = flowsim.steer.Observations.from_dataframe(
        ...     wide, "harmonic_oscillator", columns={"subject": "id", "time": "t"}, observables=("q", "v"))
        >>> len(obs.frame)
        4
        """
        pd = pandas()
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"from_dataframe needs a pandas DataFrame; got {type(frame).__name__}")
        names = {role: role for role in ROLES}
        unknown = sorted(set(columns or {}) - set(ROLES))
        if unknown:
            raise ConfigError(f"columns maps unknown roles {unknown}; the roles are {list(ROLES)}")
        names.update(columns or {})
        require_columns(frame, [v for v in (columns or {}).values()])  # a column named must exist
        frame = frame.rename(columns={v: k for k, v in names.items() if v != k and v in frame.columns})
        if "observable" not in frame.columns:
            obs = kwargs.get("observables")
            if not obs:
                raise DataError("the table has no observable column (tidy form); for a wide table name its "
                                f"value columns with observables=(…); columns are {list(frame.columns)}")
            covs = kwargs.get("covariates", ())
            keep = ["subject", "time", *((covs,) if isinstance(covs, str) else covs)]
            require_columns(frame, (*keep, *obs))
            frame = frame.melt(id_vars=keep, value_vars=list(obs), var_name="observable", value_name="value")
        return cls(frame, system, **kwargs)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, system: ODESystem | str, **kwargs: Any) -> Observations:
        """Observations from a CSV file (keywords as for :meth:`from_dataframe`).

        Examples
        --------
        >>> import flowsim
        >>> from flowsim.steer.datasets import THEOPH_CSV
        >>> obs = flowsim.steer.Observations.from_csv(
        ...     THEOPH_CSV, "theophylline", columns={"subject": "Subject", "time": "Time"},
        ...     observables=("conc",), observe=flowsim.get_system("theophylline").concentration,
        ...     covariates=("Wt", "Dose"), initial=lambda c: (c["Dose"] * c["Wt"], 0.0))
        >>> len(obs.subjects), len(obs.frame)
        (12, 132)
        """
        pd = pandas()
        if not os.path.isfile(path):
            raise DataError(f"no data file at {os.fspath(path)!r}; give the path of a CSV file")
        try:
            frame = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read {os.fspath(path)!r} as CSV: {err}") from None
        return cls.from_dataframe(frame, system, **kwargs)

    @classmethod
    def from_xarray(cls, dataset: Any, system: ODESystem | str, **kwargs: Any) -> Observations:
        """Observations from an xarray Dataset (e.g. variables per observable over dimensions
        ``subject`` and ``time``); NaN entries are missing samples and are dropped. Keywords as
        for :meth:`from_dataframe`.

        Examples
        --------
        >>> import numpy as np, xarray as xr, flowsim
        >>> ds = xr.Dataset({"q": (("subject", "time"), [[0.9, np.nan], [0.8, 0.4]])},
        ...                 coords={"subject": ["a", "b"], "time": [0.5, 1.0]})
        >>> len(flowsim.steer.Observations.from_xarray(ds, "harmonic_oscillator").frame)
        3
        """
        if not hasattr(dataset, "to_dataframe"):
            raise DataError(f"from_xarray needs an xarray Dataset; got {type(dataset).__name__}")
        frame = dataset.to_dataframe().reset_index()
        if "observable" not in frame.columns and "observable" not in (kwargs.get("columns") or {}):
            kwargs.setdefault("observables", tuple(str(v) for v in dataset.data_vars))
        if "value" in frame.columns:
            frame = frame.dropna(subset=["value"])
        else:
            frame = frame.dropna(subset=list(kwargs.get("observables") or ()), how="all")
            pd = pandas()
            frame = frame.melt(id_vars=[c for c in frame.columns if c not in kwargs["observables"]],
                               value_vars=list(kwargs["observables"]), var_name="observable",
                               value_name="value").dropna(subset=["value"])
            frame = pd.DataFrame(frame)
        return cls.from_dataframe(frame, system, **kwargs)

    # ------------------------------------------------------------------ views
    def padded(self, dtype: torch.dtype = torch.float64,
               device: torch.device | str = "cpu") -> PaddedObservations:
        """The padded tensor view (see :class:`PaddedObservations`), in ``dtype`` on ``device``.

        Examples
        --------
        >>> import flowsim
        >>> flowsim.steer.theoph_observations().padded().values.shape
        torch.Size([12, 11, 1])
        """
        if self._padded is None:
            self._padded = self._build_padded()
        pad = self._padded
        return PaddedObservations(*(v.to(device=device, dtype=dtype) if v.is_floating_point()
                                    else v.to(device) for v in pad))

    def select(self, subjects: Sequence[Any]) -> Observations:
        """The observations of some subjects only (in the order given).

        Examples
        --------
        >>> import flowsim
        >>> flowsim.steer.theoph_observations().select([1, 2]).subjects
        ('1', '2')
        """
        names = [str(s) for s in subjects]
        unknown = sorted(set(names) - set(self.subjects))
        if unknown or not names:
            raise DataError(f"unknown subjects {unknown or '(none given)'}; the subjects are "
                            f"{list(self.subjects)}")
        out = object.__new__(Observations)
        out.__dict__.update(self.__dict__)
        idx = [self.subjects.index(s) for s in names]
        out.subjects = tuple(names)
        out.frame = self.frame[self.frame["subject"].isin(names)].reset_index(drop=True)
        out.t0, out.x0 = self.t0[idx], self.x0[idx]
        out.covariates = self.covariates.loc[names] if len(self.covariates.columns) else self.covariates
        out._padded = None
        return out

    def __len__(self) -> int:
        return len(self.subjects)

    def __repr__(self) -> str:
        return (f"Observations({self.system.name}: {len(self.subjects)} subjects, "
                f"observables {list(self.observables)}, {len(self.frame)} samples)")

    # ------------------------------------------------------------------ internals
    def _observables(self, frame: Any, observables: Sequence[str] | None, observe: Any) -> tuple[str, ...]:
        present = tuple(dict.fromkeys(frame["observable"]))
        names = tuple(str(v) for v in observables) if observables is not None else present
        unknown = sorted(set(present) - set(names))
        if unknown:
            raise DataError(f"the data hold unknown observables {unknown}; the observables are {list(names)}")
        if observe is None:
            bad = sorted(set(names) - set(self.system.state_names))
            if bad:
                raise DataError(f"observables {bad} are not states of {self.system.name} "
                                f"{list(self.system.state_names)}; give observe=f(x, p) computing them")
        elif not callable(observe):
            raise ConfigError(f"observe must be a callable f(x, p); got {type(observe).__name__}")
        return names

    def _state_selector(self) -> Callable[[Tensor, Tensor], Tensor]:
        idx = [self.system.state_names.index(n) for n in self.observables]
        return lambda x, p: x[..., idx]

    def _t0(self, t0: Any) -> Tensor:
        if isinstance(t0, Mapping):
            keyed = {str(k): v for k, v in t0.items()}
            unknown = sorted(set(keyed) - set(self.subjects))
            if unknown:
                raise DataError(f"t0 names unknown subjects {unknown}; the subjects are "
                                f"{list(self.subjects)}")
            vals = [_time(keyed.get(s, 0.0)) for s in self.subjects]
        else:
            vals = [_time(t0)] * len(self.subjects)
        if not all(math.isfinite(v) for v in vals):
            raise TimeGridError(f"t0 must be finite; got {vals}")
        return torch.tensor(vals, dtype=torch.float64)

    def _initial(self, initial: Any) -> Tensor:
        dim, n = self.system.dim, len(self.subjects)
        if initial is None:
            rows = [self.system.default_x0] * n
        elif callable(initial):
            covs = [self.covariates.loc[s].to_dict() if len(self.covariates.columns) else {}
                    for s in self.subjects]
            try:
                rows = [initial(c) for c in covs]
            except Exception as err:  # noqa: BLE001 - the user's function may raise anything
                raise DataError(f"initial= raised {type(err).__name__}: {err} for the covariates "
                                f"{list(covs[0])} (pass covariates=(…) to give it more)") from err
        elif isinstance(initial, Mapping):
            keyed = {str(k): v for k, v in initial.items()}
            unknown = sorted(set(keyed) - set(self.subjects))
            missing = [s for s in self.subjects if s not in keyed]
            if unknown or missing:
                raise DataError(f"initial names unknown subjects {unknown} / misses {missing}; give one "
                                f"state per subject of {list(self.subjects)}")
            rows = [keyed[s] for s in self.subjects]
        else:
            rows = initial
        try:
            x0 = torch.as_tensor(np.asarray(rows, dtype=np.float64))
        except (TypeError, ValueError):
            raise DataError("initial states must be numbers, dim per subject") from None
        if x0.shape != (n, dim):
            raise DataError(f"initial states must be ({n} subjects, {dim}) for {self.system.name}; got "
                            f"{tuple(x0.shape)}")
        if not bool(torch.isfinite(x0).all()) or (self.system.positive and bool((x0 < 0).any())):
            sign = " and >= 0 (a positive system)" if self.system.positive else ""
            raise DataError(f"initial states must be finite{sign}; got {x0.tolist()}")
        return x0

    def _build_padded(self) -> PaddedObservations:
        f = self.frame
        k_of = {o: i for i, o in enumerate(self.observables)}
        per = [np.unique(f.loc[f["subject"] == s, "time"].to_numpy()) for s in self.subjects]
        n_t = max(len(t) for t in per)
        times = np.stack([np.concatenate([t, np.full(n_t - len(t), t[-1])]) for t in per])
        values = np.zeros((len(per), n_t, len(self.observables)))
        mask = np.zeros(values.shape, dtype=bool)
        for i, s in enumerate(self.subjects):
            rows = f[f["subject"] == s]
            ti = np.searchsorted(per[i], rows["time"].to_numpy())
            ki = rows["observable"].map(k_of).to_numpy()
            values[i, ti, ki] = rows["value"].to_numpy()
            mask[i, ti, ki] = True
        return PaddedObservations(self.x0.clone(), self.t0.clone(), torch.as_tensor(times),
                                  torch.as_tensor(values), torch.as_tensor(mask))


def _time(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TimeGridError(f"t0 must be a number (or {{subject: number}}); got {value!r}") from None
