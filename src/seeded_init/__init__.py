"""seeded-init: reproducible, local parameter initialization for PyTorch.

Declare layers on a :class:`SeededModule` with :func:`seeded_init`; every layer then draws
from its own ``torch.Generator``, never from the global RNG.
"""

from ._declare import Declaration as Declaration
from ._declare import DeclaredLayer as DeclaredLayer
from ._declare import InitSpec as InitSpec
from ._declare import PartInit as PartInit
from ._declare import seeded_init as seeded_init
from ._errors import ConstructionError as ConstructionError
from ._errors import DeclarationError as DeclarationError
from ._errors import PlanError as PlanError
from ._errors import SeedCollisionError as SeedCollisionError
from ._errors import SeededInitError as SeededInitError
from ._errors import SeedError as SeedError
from ._module import SeededModule as SeededModule
from ._module import declarations as declarations
from ._records import InitPlan as InitPlan
from ._records import ParamInit as ParamInit
from ._seeds import DEFAULT_ROOT_SEED as DEFAULT_ROOT_SEED
from ._seeds import derive_seed as derive_seed
from ._types import FanMode as FanMode
from ._types import InitFn as InitFn
from ._types import Nonlinearity as Nonlinearity
from ._types import SchemeName as SchemeName

__all__ = [
    "DEFAULT_ROOT_SEED",
    "ConstructionError",
    "Declaration",
    "DeclarationError",
    "DeclaredLayer",
    "FanMode",
    "InitFn",
    "InitPlan",
    "InitSpec",
    "Nonlinearity",
    "ParamInit",
    "PartInit",
    "PlanError",
    "SchemeName",
    "SeedCollisionError",
    "SeedError",
    "SeededInitError",
    "SeededModule",
    "declarations",
    "derive_seed",
    "seeded_init",
]

__version__ = "0.1.0"
