"""An optional numpy form of a system's vector field and Jacobian, for scipy's solvers.

scipy's ``solve_ivp`` calls the right-hand side from Python once per evaluation. Through torch
each call costs tens of microseconds of overhead, and an exact Jacobian through
``torch.func.jacrev`` far more; on a stiff system solved one trajectory at a time that overhead
is most of the solve (Van der Pol at μ = 1000, LSODA at rtol 1e-4: 67 ms per trajectory
through torch, 7.3 ms through these numpy forms; ``benchmarks/work_precision.py``). A system that also
implements :class:`NumpyVectorField` is solved by :func:`flowsim.solve.reference_solve`'s scipy
backend through these numpy methods when it solves one trajectory at a time (``stacked=False``,
the default), the fastest fair form of scipy for such a system. The torch
:meth:`~flowsim.ODESystem.vector_field` stays the definition: ``tests/systems`` checks that the
two agree, and the Jacobian against ``torch.func.jacrev``.

Examples
--------
>>> import numpy as np, flowsim
>>> from flowsim.systems.numpy_rhs import NumpyVectorField
>>> vdp = flowsim.get_system("van_der_pol", mu=1000.0)
>>> isinstance(vdp, NumpyVectorField)
True
>>> vdp.vector_field_numpy(0.0, np.array([[2.0, 0.0]]), np.array([[1000.0]]))
array([[ 0., -2.]])
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["NumpyVectorField"]


@runtime_checkable
class NumpyVectorField(Protocol):
    """A system that also gives its vector field and Jacobian as numpy functions.

    Both take ``t`` (a float), ``x`` ``(batch, dim)`` and ``p`` ``(batch, n_params)`` float64
    arrays; :meth:`vector_field_numpy` returns ``(batch, dim)``, :meth:`jacobian_numpy`
    ``(batch, dim, dim)`` with ``J[b, i, j] = ∂f_i/∂x_j``.
    """

    def vector_field_numpy(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``f(t, x; p)`` as numpy, ``(batch, dim)``."""
        ...

    def jacobian_numpy(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``∂f/∂x`` as numpy, ``(batch, dim, dim)``."""
        ...
