"""The caption unmasker (lab 05): its logic on tiny untrained captioners, then the widget driven as a browser
would, without one."""

import datetime
import io
import re
from html import unescape

import ipywidgets as W
import numpy as np
import pytest
import torch
from conftest import tiny_i2t_pipeline, tiny_t2i_pipeline
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from traitlets import TraitError

from mmdiff_lab.data.shapes import describe
from mmdiff_lab.pipelines.image_to_text import as_pixels
from mmdiff_lab.retrieval.negatives import canonical
from mmdiff_lab.widgets import CaptionRanking, CaptionUnmasker, CaptionUnmasking
from mmdiff_lab.widgets.captions_logic import SCALE, Picked, verdict
from mmdiff_lab.widgets.plots import png_size

CELL = re.compile(r"<div class='mmdiff-cell (\w+) ([\w-]+)' data-position='(\d+)' data-decided='(-?\d+)'>"
                  r"<span class='mmdiff-pos'>\d+</span><div class='mmdiff-token'>(.*?)</div>"
                  r"<div class='mmdiff-cands'>(.*?)</div><div class='mmdiff-decided[\w ]*'>(.*?)</div></div>")
CAND = re.compile(r"<div class='mmdiff-cand[\w ]*' style='[^']*'><span>(.*?)</span><span>([\d.]+)</span></div>")


@pytest.fixture(scope="module")
def pipe():
    return tiny_i2t_pipeline()


@pytest.fixture(scope="module")
def t2i():
    return tiny_t2i_pipeline()


@pytest.fixture(scope="module")
def state(pipe, t2i):
    """One recorded run of 5 steps on held-out scene 0, ranked by all three scorers."""
    s = CaptionUnmasking(pipe, t2i=t2i, steps=5)
    assert s.run(), s.error
    return s


@pytest.fixture
def fresh(state):
    """The module's recorded state, its settings put back after each test."""
    yield state
    state.error, state.stale = "", False
    state.steps, state.order, state.temperature, state.seed, state.source, state.index = 5, "confidence", 0.0, 0, "world", 0
    state.step = state.n_steps - 1
    state.ranking.set_image(state.picked)  # its own candidates again, whatever a test typed


def cells(html: str) -> list[tuple]:
    """(kind, state, position, decided, token, [(candidate, prob)], decided label) per cell of a step's HTML."""
    found = [(kind, st_, int(i), int(d), unescape(tok), [(unescape(w), p) for w, p in CAND.findall(c)], when)
             for kind, st_, i, d, tok, c, when in CELL.findall(html)]
    assert found, html[:500]
    return found


def png_file(rgb=(200, 30, 30), size=(40, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


def noise_png() -> bytes:
    """A PNG of noise: its pixel data does not compress to nothing, so cutting the file in half cuts into it."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# ---- a run and its steps ------------------------------------------------------------------------------------


def test_a_run_records_every_step_and_shows_the_last(fresh):
    s = fresh
    L = s.pipeline.denoiser.config.max_length
    assert (s.n_steps, s.step, s.error) == (5, 4, "")
    assert len(cells(s.cells_html)) == L
    assert s.status.startswith("step 5/5:") and "run: held-out scene 0, 5 steps, confidence, temperature 0, seed 0" in s.status
    assert png_size(s.image_png) == (32 * SCALE, 32 * SCALE)
    assert "true caption <b>" in s.truth_html and s.picked.caption in s.truth_html
    final = s.record.captions(s.tokenizer)[0]
    assert f"final: <b>{final}</b>" in s.caption_html and "does not parse" in s.caption_html  # untrained


def test_each_cell_reads_the_record_at_its_step(fresh):
    """Token after the step ("_" if masked), highlighted where the step revealed it, the candidates from before it,
    and the step that decided it: all the record's, none computed by the view."""
    s = fresh
    tok, decided = s.tokenizer, s.record.decided_at()[0]
    for k in range(s.n_steps):
        s.step = k
        step = s.record[k]
        tokens, revealed = step.x_t[0], step.extras["revealed"][0]
        shown = cells(s.cells_html)
        for kind, state, i, d, text, cands, when in shown:
            t = int(tokens[i])
            if t == tok.mask_id:
                assert (kind, text, state) == ("masked", "_", "masked-now")
            elif tok.itos[t] in ("<bos>", "<eos>", "<pad>"):
                assert kind == "special" and text == tok.itos[t]
            else:
                assert kind == "word" and text == tok.itos[t]
            assert (state == "revealed") == bool(revealed[i])
            assert d == int(decided[i]) + 1 and when == ("given" if i == 0 else f"step {d}")
            if i == 0:
                assert cands == []  # <bos> is given, never predicted
            else:
                ids, probs = step.extras["top_ids"][0, i], step.extras["top_probs"][0, i]
                assert [w for w, _ in cands] == [tok.itos[j] for j in ids.tolist()]
                assert [float(p) for _, p in cands] == pytest.approx(probs.tolist(), abs=0.006)
        assert sum(state == "revealed" for _, state, *_ in shown) == int(revealed.sum()) > 0
        now = s.record.captions(tok, k)[0]
        assert f"after step {k + 1}: <b>{now or '(empty)'}</b>" in s.caption_html


def test_moving_the_step_makes_no_model_call(fresh, monkeypatch):
    s = fresh

    def boom(*args, **kwargs):
        raise AssertionError("a model ran while the step moved")

    monkeypatch.setattr(s.pipeline.denoiser, "forward", boom)
    monkeypatch.setattr(s.pipeline.image_encoder, "forward", boom)
    calls, seen = s.pipeline_calls, {}
    for k in [0, 3, 1, 4, 2, 0, 4, 3]:
        s.step = k
        assert seen.setdefault(k, s.cells_html) == s.cells_html  # the same step shows the same cells
        assert s.is_drawn(k) and f"step {k + 1}/5" in s.status
    assert len(set(seen.values())) == 5
    s.step = 0
    s.back()
    assert s.step == 0  # stops at the first step
    s.forward()
    s.forward()
    assert s.step == 2 and s.pipeline_calls == calls and s.error == ""
    s.step = 99  # navigation past the end stays at the last step
    assert s.step == 4


def test_settings_reach_the_pipeline(pipe):
    s = CaptionUnmasking(pipe, steps=13, order="left-to-right", temperature=1.5, seed=7, index=3)
    assert s.run(), s.error
    assert s.n_steps == 13 and s.record.meta == {"steps": 13, "order": "left-to-right", "temperature": 1.5}
    assert (s.record.decided_at()[0] == torch.arange(-1, 13)).all()  # one position a step, left to right
    expected = pipe(as_pixels(s.picked.image, 32), num_inference_steps=13, order="left-to-right", temperature=1.5,
                    generator=torch.Generator().manual_seed(7)).captions[0]
    assert s.record.captions(s.tokenizer)[0] == expected  # the same seed gives the same caption
    assert "run: held-out scene 3, 13 steps, left-to-right, temperature 1.5, seed 7" in s.status


def test_the_defaults_are_the_captioners(pipe):
    from mmdiff_lab.pipelines.image_to_text import ImageToTextPipeline

    recommends = ImageToTextPipeline(pipe.denoiser, pipe.image_encoder, pipe.tokenizer, default_steps=6,
                                     default_order="random", default_temperature=0.5)
    s = CaptionUnmasking(recommends)
    assert (s.steps, s.order, s.temperature) == (6, "random", 0.5)
    assert CaptionUnmasking(recommends, steps=2, order="confidence").steps == 2


# ---- errors in place --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value, message", [
    ("steps", 0, "steps must be a whole number in 1..13 (the caption's 13 maskable positions"),
    ("steps", 14, "steps must be a whole number in 1..13"),
    ("steps", -3, "steps must be a whole number in 1..13"),
    ("temperature", float("nan"), "temperature must be a finite number in 0..10 (0: always the most probable word), got nan"),
    ("temperature", float("inf"), "temperature must be a finite number in 0..10"),
    ("temperature", -0.5, "temperature must be a finite number in 0..10"),
    ("temperature", 11.0, "temperature must be a finite number in 0..10"),
    ("seed", -1, "seed must be in 0..2147483647, got -1"),
    ("index", -1, "index must be a held-out scene in 0..999, got -1"),
    ("index", 1000, "index must be a held-out scene in 0..999, got 1000"),
    ("source", "upload", "source must be 'world' until an image file is uploaded"),
])
def test_bad_input_is_named_in_place_and_the_last_good_run_kept(fresh, name, value, message):
    s = fresh
    before, shown, record = getattr(s, name), s.cells_html, s.record
    setattr(s, name, value)
    assert s.error.startswith(message) and f"kept {before!r}" in s.error
    assert getattr(s, name) == before and s.cells_html == shown and s.record is record


@pytest.mark.parametrize("name, value", [("steps", "ten"), ("steps", 2.5), ("order", "backwards"),
                                         ("temperature", "hot"), ("source", "camera")])
def test_a_value_of_the_wrong_type_raises_a_trait_error(fresh, name, value):
    with pytest.raises(TraitError, match=name):
        setattr(fresh, name, value)


def test_bad_values_raise_in_the_constructor(pipe):
    with pytest.raises(ValueError, match=r"steps must be a whole number in 1\.\.13"):
        CaptionUnmasking(pipe, steps=0)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        CaptionUnmasking(pipe, temperature=float("nan"))
    with pytest.raises(ValueError, match="until an image file is uploaded"):
        CaptionUnmasking(pipe, source="upload")
    with pytest.raises(ValueError, match="world must be one of shapes, digits"):
        CaptionUnmasking(pipe, world="cifar")


@settings(max_examples=25, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_any_temperature_is_taken_or_refused_in_place(state, value):
    s = state
    s.temperature = value
    assert s.temperature == value if 0 <= value <= 10 else (s.temperature == 0.0 and "kept 0.0" in s.error)
    s.temperature, s.error = 0.0, ""


def test_a_failed_run_keeps_the_last_good_record_stamped_stale(pipe, monkeypatch):
    s = CaptionUnmasking(pipe, steps=3)
    assert s.run()
    record, shown = s.record, s.cells_html

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    with monkeypatch.context() as m:
        m.setattr(s.pipeline.denoiser, "forward", broken)
        assert not s.run()
    assert s.error == "RuntimeError: out of memory" and s.stale and s.record is record
    assert s.cells_html.startswith("<div class='mmdiff-stale'") and s.cells_html.endswith(shown)
    assert s.status.startswith("STALE")
    s.step = 0  # stepping through the old record keeps the mark
    assert "STALE" in s.cells_html and s.status.startswith("STALE")
    assert s.run() and not s.stale and "STALE" not in s.cells_html + s.status
    with monkeypatch.context() as m:
        m.setattr(s.pipeline.denoiser, "forward", broken)
        assert not s.run() and s.stale
    assert s.upload(png_file(), "red.png")  # an input taken clears the error line, and the STALE mark with it
    assert (s.error, s.stale) == ("", False) and "STALE" not in s.cells_html + s.status


# ---- picking the image --------------------------------------------------------------------------------------------


def test_an_uploaded_png_is_picked_and_captioned(fresh):
    s = fresh
    assert s.upload(png_file(), "red.png"), s.error
    assert s.source == "upload" and s.picked.name == "red.png" and s.picked.image.shape == (32, 32, 3)
    assert png_size(s.image_png) == (128, 128) and "red.png: no true caption known" in s.truth_html
    assert "red.png is picked now: press Run to caption it" in s.status
    assert s.run(), s.error
    assert "run: red.png" in s.status and "an uploaded image: no true caption" in s.caption_html
    s.source = "world"
    assert s.picked.name == "held-out scene 0" and "held-out scene 0 is picked now" in s.status
    s.source = "upload"  # the upload is kept
    assert s.picked.name == "red.png"


@pytest.mark.parametrize("data, name, message", [
    (b"shopping: milk, eggs", "notes.txt", "DataError: notes.txt: not an image file that Pillow can read"),
    (b"", "empty.png", "DataError: empty.png: the file is empty"),
    (noise_png()[: len(noise_png()) // 2], "cut.png", "DataError: cut.png: unreadable image (image file is truncated)"),
])
def test_a_bad_file_is_named_in_place_and_the_image_kept(fresh, data, name, message):
    s = fresh
    s.index = 4
    image, picked, record, shown = s.image_png, s.picked, s.record, s.cells_html
    assert not s.upload(data, name)
    assert s.error.startswith(message)
    assert (s.source, s.image_png, s.picked, s.record, s.cells_html) == ("world", image, picked, record, shown)
    assert s.run() and s.error == ""  # the picked image still runs


def test_a_bad_file_after_a_good_one_keeps_the_good_one(fresh, png_bytes):
    s = fresh
    assert s.upload(png_bytes, "rgba.png")
    assert not s.upload(b"GIF89a broken", "bad.gif")
    assert s.error.startswith("DataError: bad.gif:") and s.picked.name == "rgba.png" and s.source == "upload"


def test_picking_a_scene_shows_it_and_its_truth(fresh):
    s = fresh
    s.index = 7
    example = s.examples[7]
    shown = np.asarray(Image.open(io.BytesIO(s.image_png)).convert("RGB"))
    assert (shown[::SCALE, ::SCALE] == example.image).all()  # enlarged with nearest pixels
    assert f"held-out scene 7: true caption <b>{example.caption}</b>" == s.truth_html
    assert s.picked is s.picked  # one object per index: the status can tell whether it is the one captioned


def test_the_verdict_parses_the_final_caption_against_the_true_scene(fresh):
    s = fresh
    picked = s.picked
    assert verdict(picked.caption, picked) == "✓ parses to the true scene"
    assert verdict(describe(picked.scene, picked.template + 1)[0], picked) == "✓ parses to the true scene"
    wrong = next(c for c, kind in picked.negatives.items() if kind == "one_attribute")
    assert verdict(wrong, picked).startswith("✗ parses, but not to the true scene (wrong: ")
    assert verdict("center center center", picked) == "✗ does not parse as a ShapesWorld caption"
    assert verdict("a red circle", Picked(picked.image, "x.png")).startswith("(an uploaded image")


def test_a_digits_captioner_picks_test_digits():
    s = CaptionUnmasking(tiny_i2t_pipeline(world="digits"))
    assert s.world == "digits" and s.n_images == 360  # the world of the dual encoder it reads
    picked = s.picked
    assert picked.name == "test digit 0" and picked.label is not None
    assert len(picked.negatives) == 10 and list(picked.negatives.values()).count("other_digit") == 9
    assert verdict(picked.caption, picked).startswith("✓ names the digit")
    assert verdict(list(picked.negatives)[1], picked).startswith("✗ names ")
    assert s.run(), s.error
    s.index = 400
    assert s.error.startswith("index must be a test digit in 0..359")
    assert s.ranking.rank(), s.ranking.error
    assert "true caption ranked" in s.ranking.ranking_html


# ---- the autoregressive anchor ------------------------------------------------------------------------------------


def test_the_autoregressive_anchor_runs_without_steps_or_order():
    s = CaptionUnmasking(tiny_i2t_pipeline(causal=True))
    assert s.autoregressive
    s.order, s.steps = "random", 3  # kept, but not passed: the anchor refuses them
    assert s.run(), s.error
    assert s.record.meta["order"] == "autoregressive" and "autoregressive anchor" in s.status
    for k in range(s.n_steps):
        s.step = k
        with_candidates = [i for _, _, i, _, _, cands, _ in cells(s.cells_html) if cands]
        assert with_candidates == [k + 1]  # it predicts one position a step, the next one


# ---- ranking candidate captions -------------------------------------------------------------------------------


def rows(column_html: str) -> list[tuple[str, str, str, float]]:
    """(mark, caption, kind, score) for each row of a ranking column, in the order shown."""
    found = re.findall(r"<tr class='\w+'><td>\d+</td><td>(✓?)</td><td>(.*?)</td><td class='kind'>(.*?)</td>"
                       r"<td style='text-align:right'>(.*?)</td></tr>", column_html)
    return [(m, c, k, float(v)) for m, c, k, v in found]


def columns(html: str) -> dict[str, str]:
    return dict(re.findall(r"<div class='mmdiff-ranking-column' data-scorer='(.*?)'>(.*?)</table></div>", html))


def test_the_candidates_are_the_true_caption_and_its_hard_negatives(fresh):
    from mmdiff_lab.retrieval import hard_negatives
    from mmdiff_lab.retrieval.negatives import canonical

    s = fresh
    picked = s.picked
    lines = s.ranking.candidates.splitlines()
    assert lines[0] == canonical(picked.scene)  # said one way, as the captioner says it
    expected = [c for cs in hard_negatives(picked.scene).values() for c in cs]
    assert lines[1:] == list(dict.fromkeys(expected))
    assert s.ranking.status == f"{len(lines)} candidates for held-out scene 0: press Rank"


def test_each_scorer_ranks_the_candidates_as_its_scores_say(fresh):
    s = fresh
    r = s.ranking
    assert r.rank(), r.error
    assert list(r.scores) == ["caption likelihood", "denoising error", "dual encoder"]
    pixels = as_pixels(s.picked.image, 32)
    shown = columns(r.ranking_html)
    assert list(shown) == list(r.scores)
    for name, scorer in r.scorers.items():
        scores = scorer(pixels, r.ranked)[0]  # the same scorer, called again, gives the same scores
        assert torch.allclose(scores, r.scores[name])
        best_first = [r.ranked[j] for j in scores.argsort(descending=True).tolist()]
        assert r.order(name) == best_first
        table = rows(shown[name])
        assert [c for _, c, _, _ in table] == best_first
        assert [v for *_, v in table] == sorted((v for *_, v in table), reverse=True)
        assert [c for m, c, _, _ in table if m] == [canonical(s.picked.scene)]  # the true one, marked once
        true_rank = best_first.index(canonical(s.picked.scene)) + 1
        assert f"true caption ranked {true_rank} of {len(best_first)}" in shown[name]


def test_typed_candidates_are_ranked_and_an_equal_scene_is_marked_true(fresh):
    s = fresh
    r = s.ranking
    picked = s.picked
    same = describe(picked.scene, picked.template + 1)[0]  # the true scene said another way
    r.candidates = f"  {same}\n\na red circle on the left\n{same}\n"
    assert r.rank(), r.error
    assert r.ranked == [same, "a red circle on the left"]  # blank lines and repeats dropped
    for name in r.scores:
        table = {c: (m, k) for m, c, k, _ in rows(columns(r.ranking_html)[name])}
        assert table == {same: ("✓", "typed"), "a red circle on the left": ("", "typed")}


@pytest.mark.parametrize("text, message", [
    ("", "ValueError: no candidate captions: type at least one caption, one per line"),
    ("  \n \n", "ValueError: no candidate captions"),
    ("a red circle\na pink blob", "UnknownWordError: unknown words 'pink', 'blob' in 'a pink blob'"),
])
def test_bad_candidates_are_named_in_place_and_the_last_ranking_kept(fresh, text, message):
    s = fresh
    r = s.ranking
    assert r.rank()
    shown, calls = r.ranking_html, r.scorer_calls
    r.candidates = text
    assert not r.rank()
    assert r.error.startswith(message) and r.scorer_calls == calls  # refused before any scorer ran
    assert r.stale and r.ranking_html == "<div class='mmdiff-stale'" + r.ranking_html.split("<div class='mmdiff-stale'", 1)[1]
    assert r.ranking_html.endswith(shown) and "STALE: the last good ranking" in r.ranking_html
    assert s.error == ""  # the unmasker's own error line is not the ranking's


def test_a_failing_scorer_is_named():
    class Broken:
        name = "broken"

        def __call__(self, pixels, candidates):
            raise RuntimeError("no memory")

    pipe = tiny_i2t_pipeline()
    r = CaptionRanking({"broken": Broken()}, pipe.tokenizer)
    assert not r.rank() and r.error.startswith("pick an image first")
    r.set_image(Picked(np.zeros((32, 32, 3), np.uint8), "black.png"))
    r.candidates = "a red circle"
    assert not r.rank() and r.error == "RuntimeError: the broken scorer failed: RuntimeError: no memory"


def test_an_upload_keeps_the_typed_candidates(fresh):
    s = fresh
    s.ranking.candidates = "a red circle on the left\na blue square on the right"
    assert s.upload(png_file(), "red.png")
    r = s.ranking
    assert r.candidates == "a red circle on the left\na blue square on the right" and r.kinds == {}
    assert r.rank(), r.error
    assert "✓" not in r.ranking_html and "no candidate known to be true" in r.ranking_html
    s.source = "world"  # back to the scene: its own candidates again
    assert r.candidates.splitlines()[0] == canonical(s.picked.scene)


def test_the_dual_encoder_can_be_another(pipe):
    from mmdiff_lab import pretrained
    from mmdiff_lab.loading import load_clip

    clip = load_clip(pretrained.path("clip-shapes"))
    s = CaptionUnmasking(pipe, clip=clip)
    assert list(s.ranking.scorers) == ["caption likelihood", "dual encoder"]  # no t2i: no denoising error
    assert s.ranking.scorers["dual encoder"].clip is clip[0]


# ---- the widget ---------------------------------------------------------------------------------------------------


def upload_value(name: str, data: bytes) -> tuple[dict]:
    """What a FileUpload's value holds after the browser sent one file."""
    return ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def test_the_widget_drives_the_state(pipe, t2i, capsys):
    w = CaptionUnmasker(pipe, t2i=t2i, steps=4)
    s = w.state
    assert isinstance(w, W.VBox) and "mmdiff-caption-unmasker" in w._dom_classes
    assert capsys.readouterr().out == ""
    assert "press Run" in w.cells.value and w.image.layout.width == "128px"
    w.index.value = 2
    assert s.index == 2 and "held-out scene 2" in w.truth.value
    w.order.value = "random"
    w.run_button.click()
    assert s.n_steps == 4 and w.step.max == 4 and w.play.max == 4 and w.step.value == 4
    assert "step 4/4" in w.status.value and "random" in w.status.value and "mmdiff-cell" in w.cells.value
    shown = w.cells.value
    w.step.value = 2  # the slider counts from 1, as the status does
    assert s.step == 1 and w.cells.value != shown and "step 2/4" in w.status.value
    w.back_button.click()
    assert w.step.value == 1 and "step 1/4" in w.status.value
    w.play.value = 3  # what the browser sends while playing
    assert s.step == 2 and w.step.value == 3 and w.play_link.source[0] is w.step
    w.rank_button.click()
    assert "caption likelihood" in w.ranking.value and "denoising error" in w.ranking.value
    assert "ranked by 3 scorers" in w.ranking_status.value
    w.candidates.value = "a tiny red circle"
    w.rank_button.click()
    assert "unknown word &#x27;tiny&#x27;" in w.ranking_error.value or "unknown word 'tiny'" in w.ranking_error.value
    assert w.error.value == ""


def test_a_refused_number_snaps_the_field_back(pipe):
    w = CaptionUnmasker(pipe, steps=4)
    w.steps.value = 0
    assert w.steps.value == 4 and "steps must be a whole number in 1..13" in w.error.value and "kept 4" in w.error.value
    w.steps.value = 14
    assert w.steps.value == 4
    w.temperature.value = float("nan")
    assert w.temperature.value == 0.0 and "temperature must be a finite number" in w.error.value
    w.seed.value = -1
    assert w.seed.value == 0 and "seed must be in" in w.error.value


def test_an_upload_through_the_file_control(pipe):
    w = CaptionUnmasker(pipe, steps=2)
    w.run_button.click()
    shown = w.image.value
    w.file.value = upload_value("notes.txt", b"not a picture")
    assert "notes.txt: not an image file" in w.error.value and w.image.value == shown
    assert w.source.value == "world" and w.file.value == ()  # ready for the next file
    w.file.value = upload_value("red.png", png_file())
    assert w.error.value == "" and w.source.value == "upload" and w.image.value != shown
    assert "red.png is picked now: press Run" in w.status.value
    w.run_button.click()
    assert "run: red.png" in w.status.value
    w.source.value = "world"
    assert w.state.source == "world" and w.image.value == shown


def test_the_source_cannot_be_an_upload_before_one(pipe):
    w = CaptionUnmasker(pipe)
    w.source.value = "upload"
    assert w.source.value == "world" and "until an image file is uploaded" in w.error.value


def test_the_anchor_disables_steps_and_order(pipe):
    w = CaptionUnmasker(tiny_i2t_pipeline(causal=True))
    assert w.steps.disabled and w.order.disabled and "autoregressive anchor" in w.anchor_note.value
    w.run_button.click()
    assert w.state.error == "" and w.step.max == w.state.n_steps
    assert not CaptionUnmasker(pipe).steps.disabled


def test_a_state_or_settings_not_both(pipe):
    s = CaptionUnmasking(pipe)
    assert CaptionUnmasker(state=s).state is s
    with pytest.raises(TypeError, match="not both .got steps, t2i."):
        CaptionUnmasker(state=s, steps=3, t2i=object())


def test_the_bench_group_times_steps_drawn_for_the_first_time():
    from mmdiff_lab.widgets.bench import caption_unmasker

    figures = {f.key: f for f in caption_unmasker(moves=3)}
    assert 0 < figures["i2t_widget.step_ms"].value <= figures["i2t_widget.step_slowest_ms"].value
    assert figures["i2t_widget.step_ms"].target == ("<", 50.0) and figures["i2t_widget.step_ms"].ok
