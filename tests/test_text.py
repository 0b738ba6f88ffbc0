"""The word-level tokenizer: ids, padding, truncation, masks, unknown words, files."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff_lab.data import Digits, ShapesWorld
from mmdiff_lab.text import Tokenizer, UnknownWordError


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_corpus(ShapesWorld().captions())


def test_vocabulary_covers_every_generated_caption(tok):
    world = ShapesWorld(seed=5, size=2000)
    held = ShapesWorld(seed=5, split="heldout", size=500)
    for ex in [world[i] for i in range(len(world))] + [held[i] for i in range(len(held))]:
        ids = tok.ids(ex.caption)
        assert len(ids) == len(ex.caption.split())
    assert tok.max_length == max(len(c.split()) for c in ShapesWorld().captions()) + 2


def test_encode_pads_masks_and_decodes(tok):
    batch = tok.encode(["a small red circle on the left", "a large blue square at the top"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape == (2, tok.max_length)
    assert ids.dtype == torch.long
    assert ids[0, 0] == tok.bos_id and ids[0, 8] == tok.eos_id and ids[0, 9] == tok.pad_id
    assert mask[0].tolist() == [1] * 9 + [0] * (tok.max_length - 9)
    assert tok.decode(ids[0]) == "a small red circle on the left"
    assert tok.pad_id == 0


def test_padding_longest_and_truncation(tok):
    out = tok.encode(["a small red circle on the left", "a red circle"], padding="longest")
    assert out["input_ids"].shape[1] == 9
    with pytest.warns(UserWarning, match=r"dropped the last 4 \('circle on the left'\)"):
        short = tok.encode("a small red circle on the left", max_length=5)
    assert short["input_ids"][0].tolist()[-1] == tok.eos_id and short["input_ids"].shape == (1, 5)
    with pytest.raises(ValueError, match="more than max_length=5"):
        tok.encode("a small red circle on the left", max_length=5, truncation=False)


def test_unknown_word_is_named_with_suggestions(tok):
    with pytest.raises(UnknownWordError) as err:
        tok.encode("a small red circel on the left")
    assert err.value.word == "circel" and err.value.words == ["circel"]
    assert "circle" in err.value.suggestions["circel"]
    assert "unknown word 'circel'" in str(err.value) and "did you mean 'circle'" in str(err.value)


def test_every_unknown_word_is_named_with_its_own_suggestions(tok):
    with pytest.raises(UnknownWordError) as err:
        tok.ids("a smal red circel left of a bleu sqare, circel")
    assert err.value.words == ["smal", "circel", "bleu", "sqare"]  # in the order typed, each once
    assert {w: s[0] for w, s in err.value.suggestions.items()} == {
        "smal": "small", "circel": "circle", "bleu": "blue", "sqare": "square"}
    message = str(err.value)
    assert "unknown words 'smal', 'circel', 'bleu', 'sqare'" in message
    assert "'bleu': did you mean 'blue'" in message and "'sqare': did you mean 'square'" in message


@pytest.mark.parametrize("typed", [
    "a red circle.", "A Red Circle", "  a   red\tcircle  ", "a red circle!", "a red circle?", '"a red circle"',
    "“a red circle”", "a red circle;", "a, red: circle", "'a red circle'", "a red-circle", "(a red circle)",
    "ａ ｒｅｄ circle",  # full-width letters, as an East Asian keyboard types them
])
def test_punctuation_case_and_spacing_are_normalised(tok, typed):
    assert tok.ids(typed) == tok.ids("a red circle")


@pytest.mark.parametrize("typed, unknown", [
    ("红色 circle", "红色"),  # Chinese: one unknown word, not one per character
    ("a 🔴 circle", "🔴"),  # an emoji is not punctuation: it is named
    ("a rèd circle", "rèd"),
    ("a красный circle", "красный"),
])
def test_other_scripts_get_the_same_clear_error(tok, typed, unknown):
    with pytest.raises(UnknownWordError) as err:
        tok.ids(typed)
    assert err.value.words == [unknown] and repr(unknown) in str(err.value)
    if not err.value.suggestions[unknown]:  # nothing close: the message lists the words it knows
        assert "the words known: a, above" in str(err.value)


def test_punctuation_the_vocabulary_knows_is_kept():
    tok = Tokenizer.from_corpus(["a cat, on a mat", "a dog"])
    assert "," in tok.words and tok.tokens("a cat, on a mat.") == ["a", "cat", ",", "on", "a", "mat"]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_any_text_gives_known_words_or_names_the_unknown_ones(tok, text):
    try:
        words = tok.tokens(text)
    except UnknownWordError as e:
        assert e.words and all(w not in tok.words for w in e.words) and str(e)
    else:
        assert all(w in tok.words for w in words)


def test_special_tokens_cannot_be_typed(tok):
    with pytest.raises(UnknownWordError):
        tok.ids("a <mask> circle")


def test_mask_token_is_shown(tok):
    ids = [tok.bos_id, tok.stoi["red"], tok.mask_id, tok.eos_id]
    assert tok.decode(ids) == "red _"


def test_save_and_load(tmp_path, tok):
    tok.save(tmp_path / "tok.json")
    again = Tokenizer.load(tmp_path / "tok.json")
    assert again == tok
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a tokenizer file"):
        Tokenizer.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Tokenizer.load(tmp_path / "missing.json")


def test_empty_corpus_is_an_error():
    with pytest.raises(ValueError, match="empty corpus"):
        Tokenizer.from_corpus([])


def test_digits_corpus():
    tok = Tokenizer.from_corpus(Digits().captions())
    assert "seven" in tok.words and tok.decode(tok.encode("the digit seven")["input_ids"][0]) == "the digit seven"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_roundtrip_property(data, tok):
    words = data.draw(st.lists(st.sampled_from(tok.words), min_size=1, max_size=tok.max_length - 2))
    text = " ".join(words)
    out = tok.encode(text)
    assert tok.decode(out["input_ids"][0]) == text
    assert int(out["attention_mask"].sum()) == len(words) + 2
    assert (out["input_ids"][0][out["attention_mask"][0] == 0] == tok.pad_id).all()
