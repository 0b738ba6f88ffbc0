"""A word-level tokenizer built from a world's captions: small vocabularies make attention maps readable,
one token per word, so "the map of the word 'red'" means one row of the attention matrix.

Sequences are ``<bos> w_1 ... w_n <eos> <pad> ...``; ``<mask>`` is the absorbing token of the caption
denoiser (masked discrete diffusion). Text is normalised as a person types it (Unicode NFKC, lower case, any
spacing; punctuation marks the vocabulary lacks are dropped), and every word the vocabulary lacks is named in
one error, each with the known words closest to it.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

PAD, BOS, EOS, MASK = "<pad>", "<bos>", "<eos>", "<mask>"
SPECIALS = (PAD, BOS, EOS, MASK)  # PAD is id 0, so a zero tensor is all padding
# A word is a run of letters or digits in any script (so "红色" or "café" is one unknown word, not pieces);
# every other visible character (punctuation, "<", an emoji) is a token of its own.
_WORD = re.compile(r"[^\W_]+|[^\w\s]|_")


class UnknownWordError(KeyError):
    """Words outside the tokenizer's vocabulary; the message names every one and suggests known words.

    Attributes: ``words`` (in the order typed), ``word`` (the first), ``text``, ``suggestions`` {word: [known]}.
    """

    def __init__(self, words: list[str], text: str, suggestions: dict[str, list[str]],
                 vocabulary: Sequence[str] = ()):
        self.words, self.text, self.suggestions = list(words), text, dict(suggestions)
        self.word = self.words[0]
        quoted = ", ".join(repr(w) for w in self.words)
        message = f"unknown word{'s' if len(self.words) > 1 else ''} {quoted} in {text!r}"
        for w in self.words:
            if self.suggestions.get(w):
                close = ", ".join(repr(s) for s in self.suggestions[w])
                message += f"; did you mean {close}?" if len(self.words) == 1 else f"; {w!r}: did you mean {close}?"
        far = [w for w in self.words if not self.suggestions.get(w)]
        if far and vocabulary:
            shown = ", ".join(vocabulary[:40]) + (" ..." if len(vocabulary) > 40 else "")
            message += f"; no known word is close to {', '.join(repr(w) for w in far)} (the words known: {shown})"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


def split_words(text: str) -> list[str]:
    """Normalised words and marks, in order: NFKC (full-width letters become plain ones), lower case."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def is_punctuation(token: str) -> bool:
    """A full stop, comma, quote, bracket ... (Unicode category P*), which a caption can do without."""
    return all(unicodedata.category(c).startswith("P") for c in token)


class Tokenizer:
    """Maps captions to id tensors and back.

    Args:
        vocab: the words, in id order after the special tokens.
        max_length: sequence length with <bos> and <eos>, used for padding and truncation.
    """

    def __init__(self, vocab: Iterable[str], max_length: int = 16):
        words = [w for w in dict.fromkeys(vocab) if w not in SPECIALS]
        self.itos: list[str] = list(SPECIALS) + words
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if max_length < 3:
            raise ValueError("max_length must leave room for <bos>, one word and <eos>")
        self.max_length = max_length

    @classmethod
    def from_corpus(cls, captions: Iterable[str], max_length: int | None = None) -> Tokenizer:
        """Vocabulary of every word in the captions (sorted), max_length from the longest caption + 2."""
        captions = list(captions)
        if not captions:
            raise ValueError("cannot build a tokenizer from an empty corpus")
        words = sorted({w for c in captions for w in split_words(c)})
        longest = max(len(split_words(c)) for c in captions)
        return cls(words, max_length or longest + 2)

    # -- ids -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return self.stoi[PAD]

    @property
    def bos_id(self) -> int:
        return self.stoi[BOS]

    @property
    def eos_id(self) -> int:
        return self.stoi[EOS]

    @property
    def mask_id(self) -> int:
        return self.stoi[MASK]

    @property
    def words(self) -> list[str]:
        """The vocabulary without special tokens."""
        return self.itos[len(SPECIALS):]

    def suggest(self, word: str, n: int = 3) -> list[str]:
        """The known words closest in spelling to ``word``."""
        return difflib.get_close_matches(word, self.words, n=n, cutoff=0.5)

    def tokens(self, text: str) -> list[str]:
        """The words of one caption as the vocabulary reads them: normalised, without the punctuation marks it
        lacks (a full stop ends a sentence, it names nothing); raises UnknownWordError naming every unknown word."""
        words = [w for w in split_words(text) if w in self.stoi or not is_punctuation(w)]
        unknown = list(dict.fromkeys(w for w in words if w not in self.stoi or w in SPECIALS))
        if unknown:
            raise UnknownWordError(unknown, text, {w: self.suggest(w) for w in unknown}, self.words)
        return words

    def ids(self, text: str) -> list[int]:
        """Word ids of one caption, without special tokens; raises UnknownWordError."""
        return [self.stoi[w] for w in self.tokens(text)]

    def encode(
        self,
        texts: str | list[str],
        padding: str = "max_length",
        truncation: bool = True,
        max_length: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tokenize a caption or a batch.

        Args:
            texts: one caption or a list of B captions.
            padding: "max_length" pads to max_length; "longest" pads to the longest in the batch.
            truncation: cut sequences longer than max_length (keeping <eos>) with a warning naming the words
                dropped; if False, raise instead.
            max_length: overrides the tokenizer's.
        Returns:
            {"input_ids": (B, L) long, "attention_mask": (B, L) long, 1 on real tokens}.
        """
        if isinstance(texts, str):
            texts = [texts]
        L = max_length or self.max_length
        seqs = []
        for text in texts:
            seq = [self.bos_id, *self.ids(text), self.eos_id]
            if len(seq) > L:
                if not truncation:
                    raise ValueError(f"{text!r} has {len(seq)} tokens, more than max_length={L}")
                dropped = self.tokens(text)[L - 2 :]
                warnings.warn(f"{text!r} is longer than the {L - 2} words the model reads: dropped the last "
                              f"{len(dropped)} ({' '.join(dropped)!r})", stacklevel=2)
                seq = seq[: L - 1] + [self.eos_id]
            seqs.append(seq)
        width = L if padding == "max_length" else max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, seq in enumerate(seqs):
            input_ids[b, : len(seq)] = torch.tensor(seq)
            attention_mask[b, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def decode(self, ids: torch.Tensor | list[int], skip_special: bool = True) -> str:
        """Ids of one sequence back to a caption; <mask> tokens are kept (shown as "_") even when skipping."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        words = []
        for i in ids:
            w = self.itos[i]
            if w == MASK:
                words.append("_")
            elif not (skip_special and w in SPECIALS):
                words.append(w)
        return " ".join(words)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"vocab": self.words, "max_length": self.max_length}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        try:
            cfg = json.loads(path.read_text())
            return cls(cfg["vocab"], cfg["max_length"])
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: tokenizer file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a tokenizer file ({type(e).__name__}: {e})") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.itos == other.itos and self.max_length == other.max_length

    def __repr__(self) -> str:
        return f"Tokenizer({len(self.words)} words, max_length={self.max_length})"
