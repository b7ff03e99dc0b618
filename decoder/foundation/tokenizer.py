"""A word-level tokenizer for SimCOCO captions, with open_clip's interface.

open_clip tokenizers are callables ``tokenizer(texts) -> LongTensor (n,
context_length)``. SimCOCO's language is small (a few hundred words), so the
mini-CLIP uses a word vocabulary instead of CLIP's 49k BPE table, which
keeps its weights small. ``<eot>`` has the highest id so that open_clip's
default ``argmax`` text pooling lands on it, as with CLIP's BPE.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

PAD, UNK, SOT, EOT = "<pad>", "<unk>", "<sot>", "<eot>"
_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9]")
_WORD_OR_DIGIT = re.compile(r"[a-z']+|[0-9]|[^\sa-z0-9]")


def split_words(text: str, digits: bool = False) -> list[str]:
    """Lower-cased words and punctuation; with ``digits``, numbers split into
    their digits ("29" -> "2", "9"), as CLIP's BPE splits most numbers."""
    return (_WORD_OR_DIGIT if digits else _WORD).findall(text.lower())


class WordTokenizer:
    """``tokenizer(texts)`` -> (n, context_length) ids: <sot> words <eot> <pad>...
    ``digits``: numbers are read digit by digit (ten frequent tokens instead
    of one rare token per number; docs/attribution.md, "The foundation bars")."""

    def __init__(self, words: list[str], context_length: int = 32, digits: bool = False):
        self.vocab = [PAD, UNK, SOT, *words, EOT]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.context_length = int(context_length)
        self.digits = bool(digits)

    @classmethod
    def from_texts(cls, texts, context_length: int = 32, digits: bool = False) -> WordTokenizer:
        words = sorted({w for t in texts for w in split_words(t, digits)})
        return cls(words, context_length, digits)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return self.index[PAD]

    @property
    def sot_id(self) -> int:
        return self.index[SOT]

    @property
    def eot_id(self) -> int:
        return self.index[EOT]

    def encode(self, text: str) -> list[int]:
        ids = [self.index.get(w, self.index[UNK]) for w in split_words(text, self.digits)]
        ids = [self.sot_id, *ids[: self.context_length - 2], self.eot_id]
        return ids + [self.pad_id] * (self.context_length - len(ids))

    def __call__(self, texts, context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        if context_length not in (None, self.context_length):
            raise ValueError(f"context_length: this tokenizer uses {self.context_length}, got {context_length}")
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.long)

    def decode(self, ids) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == self.eot_id:
                break
            if i in (self.pad_id, self.sot_id):
                continue
            words.append(self.vocab[i] if 0 <= i < len(self.vocab) else UNK)
        text = " ".join(words)
        if self.digits:
            text = re.sub(r"(?<=\d) (?=\d)", "", text)  # a number's digits back together
        return re.sub(r" ([,.;])", r"\1", text)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"vocab": self.vocab, "context_length": self.context_length, "digits": self.digits}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        d = json.loads(Path(path).read_text())
        vocab = d["vocab"]
        if vocab[:3] != [PAD, UNK, SOT] or vocab[-1] != EOT:
            raise ValueError(f"tokenizer {str(path)!r}: not a MindLens word vocabulary")
        return cls(vocab[3:-1], d["context_length"], d.get("digits", False))  # files written before digits: words
