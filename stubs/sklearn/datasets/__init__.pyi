from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

@overload
def load_digits(
    *, n_class: int = 10, return_X_y: Literal[True], as_frame: Literal[False] = False
) -> tuple[NDArray[np.float64], NDArray[np.int64]]: ...

# Otherwise a Bunch, or pandas objects under as_frame=True: not declared here.
@overload
def load_digits(*, n_class: int = 10, return_X_y: bool = False, as_frame: bool = False) -> Any: ...
