"""The embedding interface on real open_clip classes at tiny sizes."""

import json
import logging

import numpy as np
import open_clip
import pytest
import torch

from decoder.training.clip import clip_loss, evaluate_clip, simcoco_tokenizer, train_clip, zero_shot_classifier
from decoder.training.pairs import make_pairs
from decoder.foundation.conv_stem import ConvStem, add_conv_stem
from decoder.foundation.embedding import OpenClipEmbedder, build_mini_clip, load_embedder
from decoder.foundation.tokenizer import WordTokenizer
from decoder.training.loop import TrainConfig

TINY_VISION = {"image_size": 32, "patch_size": 8, "width": 48, "layers": 1, "head_width": 16}
TINY_TEXT = {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}


def tiny_clip(convention):
    """A ViT-L/bigG-shaped CLIP in miniature, with open_clip's real tokenizer."""
    torch.manual_seed(0)
    model = open_clip.model.CLIP(embed_dim=24, vision_cfg=TINY_VISION, text_cfg=TINY_TEXT)
    tok = lambda texts: open_clip.tokenize(texts, context_length=12)
    return OpenClipEmbedder(model, tok, convention, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD, 32)


def images(n=3):
    return np.random.default_rng(0).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def test_psychometry_convention_tokens_include_cls_normalised_by_its_norm():
    emb = tiny_clip("psychometry")
    with torch.no_grad():
        out = emb.encode_images(images())
        txt = emb.encode_text(["a red car", "two houses", "a face"])
    assert emb.image_tokens_shape == (17, 24) and out.tokens.shape == (3, 17, 24)  # 16 patches + CLS, projected
    torch.testing.assert_close(out.tokens[:, 0].norm(dim=-1), torch.ones(3))
    assert txt.tokens.shape == (3, 12, 24) and emb.text_tokens_shape == (12, 24)
    eot = open_clip.tokenize(["a red car"], context_length=12).argmax(-1)
    torch.testing.assert_close(txt.tokens[0, eot].norm(), torch.tensor(1.0))


def test_mindeye2_convention_gives_unprojected_patch_tokens():
    emb = tiny_clip("mindeye2")
    with torch.no_grad():
        out = emb.encode_images(images())
    assert emb.image_tokens_shape == (16, 48) and out.tokens.shape == (3, 16, 48)  # width, not embed_dim
    assert out.pooled.shape == (3, 24)


def test_unknown_convention_and_bad_images():
    with pytest.raises(ValueError, match="convention: expected one of"):
        tiny_clip("dalle")
    emb = tiny_clip("psychometry")
    with pytest.raises(ValueError, match=r"images: expected \(b, H, W, 3\)"):
        emb.encode_images(np.zeros((2, 64, 64), np.uint8))


def test_mini_clip_is_built_through_the_registered_open_clip_config():
    assert "mindlens-mini-clip" in open_clip.list_models()
    tok = WordTokenizer.from_texts(["a red car", "two houses"])
    emb = build_mini_clip(tok)
    assert emb.image_tokens_shape == (65, 128) and emb.text_tokens_shape == (32, 128)


def test_save_and_load_round_trip_through_local_dir(tmp_path):
    tok = WordTokenizer.from_texts(["a red car", "two houses"])
    emb = build_mini_clip(tok)
    emb.save_pretrained(tmp_path)
    again = load_embedder(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again.encode_images(images()).tokens, emb.encode_images(images()).tokens)
        torch.testing.assert_close(again.encode_text(["a red car"]).tokens, emb.encode_text(["a red car"]).tokens)
    assert again.convention == "psychometry" and again.tokenizer.vocab == tok.vocab


@pytest.mark.parametrize("stem", [(32, 64, 128), None])
def test_the_patchify_layer_or_a_conv_stem_round_trips_on_the_same_token_grid(tmp_path, stem, caplog):
    with caplog.at_level(logging.WARNING):
        emb = build_mini_clip(WordTokenizer.from_texts(["a red car"]), conv_stem=stem)
        emb.save_pretrained(tmp_path)
        again = load_embedder(tmp_path)
    assert "No pretrained weights" not in caplog.text  # the weights are ours: open_clip's random-init warning is noise
    assert not logging.getLogger().filters  # and the filter that drops it is gone again
    assert isinstance(again.model.visual.conv1, ConvStem) == (stem is not None)
    assert again.image_tokens_shape == emb.image_tokens_shape == (65, 128)  # the stem ends on the 8 x 8 patch grid
    with torch.no_grad():
        torch.testing.assert_close(again.encode_images(images()).tokens, emb.encode_images(images()).tokens)


def test_a_conv_stem_that_would_change_the_token_grid_is_refused_and_a_missing_one_named(tmp_path):
    model = open_clip.create_model("mindlens-mini-clip", pretrained=None)
    with pytest.raises(ValueError, match="shrink by 4, but the patch size is 8"):
        add_conv_stem(model, (32, 64))
    build_mini_clip(WordTokenizer.from_texts(["a car"])).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "open_clip_config.json").read_text())
    cfg["mindlens"]["conv_stem"] = None  # weights with a stem, a config without one
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="weights do not match the config"):
        load_embedder(tmp_path)


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="expected a saved directory or one of"):
        load_embedder("ViT-H-99")
    with pytest.raises(ValueError, match="missing open_clip_config.json"):
        load_embedder(tmp_path)
    emb = build_mini_clip(WordTokenizer.from_texts(["a car"]))
    emb.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "open_clip_config.json").read_text())
    cfg["model_cfg"]["vision_cfg"]["width"] = 64
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="weights do not match the config"):
        load_embedder(tmp_path)


def test_tokenizer_round_trip_and_eot_is_argmax(tmp_path):
    tok = WordTokenizer.from_texts(["A red car on the left.", "Two houses."])
    ids = tok(["a red car on the left."])
    assert ids.shape == (1, 32) and int(ids.argmax()) == 8  # <sot>, 6 words, '.', then <eot>
    assert tok.decode(ids[0]) == "a red car on the left."
    tok.save(tmp_path / "t.json")
    assert WordTokenizer.load(tmp_path / "t.json").vocab == tok.vocab


def test_train_clip_writes_a_loadable_model_and_evaluation(tmp_path):
    report = train_clip(tmp_path, TrainConfig(steps=3, batch_size=8, warmup=1, checkpoint_every=2), n_images=40, progress=False)
    assert {"clip_zero_shot_accuracy", "image_to_caption_top1", "caption_to_image_top1"} <= set(report)
    assert json.loads((tmp_path / "evaluation.json").read_text())["train_config"]["steps"] == 3
    assert load_embedder(tmp_path).image_tokens_shape == (65, 128)
    assert load_embedder(tmp_path).tokenizer.digits and report["digits"]  # the build's recipe by default


def test_evaluation_reports_fractions():
    emb = build_mini_clip(WordTokenizer.from_texts(["a photo of a car"] + [c for caps in make_pairs(20).captions for c in caps]))
    report = evaluate_clip(emb, make_pairs(20, seed=3), pool=10)
    assert 0 <= report["clip_zero_shot_accuracy"] <= 1 and report["retrieval_pool"] == 10
    assert zero_shot_classifier(emb).shape == (10, 128)


def test_encoding_from_several_threads_at_once_never_mixes_up_the_outputs():
    """open_clip returns patch tokens only while a flag on the shared visual
    tower is set: the explorer encodes from decodes, per-trial metrics and
    its warm-up at once, and an unguarded flag made one call's unpacking fail."""
    from concurrent.futures import ThreadPoolExecutor

    emb = tiny_clip("psychometry")
    x = images(2)

    def both(_):
        with torch.no_grad():
            return emb.encode_images(x).tokens.shape, emb.embed_images(x).shape

    with ThreadPoolExecutor(4) as pool:
        shapes = set(pool.map(both, range(64)))
    assert shapes == {((2, 17, 24), (2, 24))}


def test_hard_negative_captions_add_candidates_to_the_image_to_text_loss():
    data = make_pairs(16)
    emb = build_mini_clip(simcoco_tokenizer(data))
    images, texts, twins, _ = data.batch_with_twins(torch.Generator().manual_seed(0), 8)
    plain, hard = clip_loss(emb, images, texts), clip_loss(emb, images, texts, twins)
    assert hard > plain  # more candidates to rank the true caption above
    hard.backward()
    assert emb.model.text_projection.grad is not None and emb.model.visual.conv1.net[0].weight.grad is not None


def test_a_digit_tokenizer_reads_numbers_digit_by_digit_and_joins_them_back(tmp_path):
    tok = WordTokenizer.from_texts(['A number "29" and a word "CUP".'], digits=True)
    assert {"2", "9"} <= set(tok.vocab) and "29" not in tok.vocab
    ids = tok(['a number "92" written.'])[0]
    assert tok.decode(ids) == 'a number " 92 " <unk>.'  # 92 never seen whole: its digits are
    tok.save(tmp_path / "tok.json")
    again = WordTokenizer.load(tmp_path / "tok.json")
    assert again.digits and again.vocab == tok.vocab
    words = WordTokenizer.from_texts(['A number "29".'])
    assert "29" in words.vocab and not words.digits
