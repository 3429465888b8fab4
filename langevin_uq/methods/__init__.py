"""The inference methods behind one interface (`AbstractMethod`), a file each.

``ls``: the Langevin sampler (`ls.LangevinMethod`); ``bbvi-full`` / ``bbvi-meanfield``: a
Gaussian guide through NumPyro's ELBO (`bbvi.BBVIMethod`); ``nuts``: NumPyro's NUTS
(`nuts.NUTSMethod`). NumPyro is imported by ``bbvi.py``, ``nuts.py`` and the model they share,
``probabilistic.py``, and nowhere else.
"""

from .base import AbstractMethod
from .bbvi import BBVIMethod
from .ls import LangevinMethod
from .nuts import NUTSMethod

CLASSES: dict[str, type[AbstractMethod]] = {
    kind: cls for cls in (LangevinMethod, BBVIMethod, NUTSMethod) for kind in cls.kinds
}
"""The method class of each ``method.kind``."""


def check(config) -> None:
    """Refuse a config its method cannot run (`AbstractMethod.check`)."""
    CLASSES[config.method.kind].check(config)


def method_for(config) -> AbstractMethod:
    """The method of ``config.method.kind``, built from the config sections it reads."""
    cls = CLASSES[config.method.kind]
    if cls is LangevinMethod:
        return LangevinMethod(sampler=config.sampler, train=config.train)
    return cls(method=config.method, train=config.train)


__all__ = ["AbstractMethod", "BBVIMethod", "LangevinMethod", "NUTSMethod", "check", "method_for"]
