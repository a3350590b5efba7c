# The part of scipy.stats that the tests use; scipy ships no type information.
# The distribution objects' classes are private here: only their call and moments are typed.

class _Frozen:
    def mean(self) -> float: ...
    def std(self) -> float: ...
    def var(self) -> float: ...

class _Distribution:
    def __call__(self, *args: float, loc: float = 0.0, scale: float = 1.0) -> _Frozen: ...

norm: _Distribution
truncnorm: _Distribution
uniform: _Distribution
