"""Default hyper-parameters (defined in mobilejax/config.py); every config in configs/ starts from these.

    mobilejax train --config configs/default.py --workdir runs/default
"""
from mobilejax.config import apply_args, get_config as _default


def get_config(arg=None):
    return apply_args(_default(), arg)
