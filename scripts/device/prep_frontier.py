"""Fill the decode and cut-token caches once, so parallel frontier runs only read them."""
import sys
from pathlib import Path

from research.eval.codec_frontier import FrontierConfig
from research.eval.rate_accuracy import cut_tokens, reference_model

config = FrontierConfig(out=Path(sys.argv[2]), root=sys.argv[1], batch_size=256).with_defaults()
config.out.mkdir(parents=True, exist_ok=True)
reference = reference_model(config)
cut_tokens(config, reference.weights, reference.dm, 0).setup()
