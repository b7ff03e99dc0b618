"""The shared multi-subject brain decoder."""

from .._lazy import lazy_exports

__all__ = ["BrainDecoder", "DecoderConfig", "DecoderOutput", "describe_preset", "load_decoder_preset"]
__getattr__, __dir__ = lazy_exports(__name__, {name: ".decoder" for name in __all__})
