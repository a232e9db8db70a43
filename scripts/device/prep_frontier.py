"""Fill the decode and cut-token caches once, so parallel frontier runs only read them.

    python scripts/device/prep_frontier.py ROOT OUT [VIEWS]   # VIEWS: augmented views (default 1)
"""
import sys
from pathlib import Path

from research.eval.codec_frontier import FrontierConfig
from research.eval.rate_accuracy import cut_tokens, reference_model

views = int(sys.argv[3]) if len(sys.argv) > 3 else 1
config = FrontierConfig(out=Path(sys.argv[2]), root=sys.argv[1], batch_size=256, views=views).with_defaults()
config.out.mkdir(parents=True, exist_ok=True)
reference = reference_model(config)
cut_tokens(config, reference.weights, reference.dm, 0).setup()
