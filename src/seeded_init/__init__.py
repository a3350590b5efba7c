"""seeded-init: reproducible, local parameter initialization for PyTorch.

Declare layers on a :class:`SeededModule` with :func:`seeded_init`; every layer then draws
from its own ``torch.Generator``, never from the global RNG.
"""

from ._configs import Constant as Constant
from ._configs import Dirac as Dirac
from ._configs import KaimingNormal as KaimingNormal
from ._configs import KaimingUniform as KaimingUniform
from ._configs import Normal as Normal
from ._configs import Orthogonal as Orthogonal
from ._configs import Scheme as Scheme
from ._configs import Sparse as Sparse
from ._configs import TruncNormal as TruncNormal
from ._configs import Uniform as Uniform
from ._configs import XavierNormal as XavierNormal
from ._configs import XavierUniform as XavierUniform
from ._draw import DrawOn as DrawOn
from ._errors import ConstructionError as ConstructionError
from ._errors import DeclarationError as DeclarationError
from ._errors import PlanError as PlanError
from ._errors import ProvenanceError as ProvenanceError
from ._errors import SeedCollisionError as SeedCollisionError
from ._errors import SeededInitError as SeededInitError
from ._errors import SeedError as SeedError
from ._fingerprint import Fingerprint as Fingerprint
from ._fingerprint import fingerprint as fingerprint
from ._layer import Declaration as Declaration
from ._layer import DeclaredLayer as DeclaredLayer
from ._module import SeededModule as SeededModule
from ._module import declarations as declarations
from ._plot import plot_distributions as plot_distributions
from ._provenance import Provenance as Provenance
from ._records import InitPlan as InitPlan
from ._records import ParamInit as ParamInit
from ._records import PlanDiff as PlanDiff
from ._rules import InitRules as InitRules
from ._rules import Rule as Rule
from ._rules import RuleTarget as RuleTarget
from ._rules import RuleValue as RuleValue
from ._seeds import DEFAULT_ROOT_SEED as DEFAULT_ROOT_SEED
from ._seeds import derive_seed as derive_seed
from ._spec import InitSpec as InitSpec
from ._spec import PartInit as PartInit
from ._spec import seeded_init as seeded_init
from ._stats import DistributionCheck as DistributionCheck
from ._stats import ParamCheck as ParamCheck
from ._stats import check_distributions as check_distributions
from ._types import FanMode as FanMode
from ._types import InitFn as InitFn
from ._types import Nonlinearity as Nonlinearity
from ._types import Scalar as Scalar
from ._types import SchemeKeywords as SchemeKeywords
from ._types import SchemeName as SchemeName

__all__ = [
    "DEFAULT_ROOT_SEED",
    "Constant",
    "ConstructionError",
    "Declaration",
    "DeclarationError",
    "DeclaredLayer",
    "Dirac",
    "DistributionCheck",
    "DrawOn",
    "FanMode",
    "Fingerprint",
    "InitFn",
    "InitPlan",
    "InitRules",
    "InitSpec",
    "KaimingNormal",
    "KaimingUniform",
    "Nonlinearity",
    "Normal",
    "Orthogonal",
    "ParamCheck",
    "ParamInit",
    "PartInit",
    "PlanDiff",
    "PlanError",
    "Provenance",
    "ProvenanceError",
    "Rule",
    "RuleTarget",
    "RuleValue",
    "Scalar",
    "Scheme",
    "SchemeKeywords",
    "SchemeName",
    "SeedCollisionError",
    "SeedError",
    "SeededInitError",
    "SeededModule",
    "Sparse",
    "TruncNormal",
    "Uniform",
    "XavierNormal",
    "XavierUniform",
    "check_distributions",
    "declarations",
    "derive_seed",
    "fingerprint",
    "plot_distributions",
    "seeded_init",
]

__version__ = "0.1.0"
