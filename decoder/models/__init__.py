"""The shared multi-subject brain decoder."""

from .decoder import (
    BrainDecoder,
    DecoderConfig,
    DecoderOutput,
    describe_preset,
    load_decoder_preset,
)

__all__ = ["BrainDecoder", "DecoderConfig", "DecoderOutput", "describe_preset", "load_decoder_preset"]
