import json

from decoder.commands import main


def test_info_json_has_the_documented_keys(smoke_dir, capsys):
    assert main(["cohort", "info", str(smoke_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("n_subjects", "voxels_per_subject", "n_train_images_per_subject", "n_test_images",
                "n_sessions_per_subject", "roi_names", "median_ncsnr_per_subject"):
        assert key in info
    assert info["n_subjects"] == 3 and info["n_test_images"] == 100
    assert "VWFA-2" in info["roi_names"] and info["n_sessions_per_subject"]["1"] == 2


def test_check_json_exit_code(smoke_dir, capsys):
    assert main(["cohort", "check", str(smoke_dir), "--json", "--subjects", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["subjects"]) == ["1"] and report["passed"]


def test_figures_are_written(smoke_dir, tmp_path, capsys):
    assert main(["cohort", "figures", str(smoke_dir), "--out", str(tmp_path), "--subjects", "2"]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["rois_all_subjects.png", "stimuli.png", "subj02_overview.png"]
    assert all(p.stat().st_size > 20_000 for p in tmp_path.glob("*.png"))


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["cohort", "info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cohort: directory") and "Traceback" not in err
    assert main(["cohort", "build", "--preset", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "preset: expected one of" in capsys.readouterr().err
    assert main(["cohort", "check", str(tmp_path)]) == 2
    assert "missing cohort.json" in capsys.readouterr().err


def test_bench_times_the_foundation_models(tmp_path, capsys):
    import torch

    from decoder.foundation.captioner import Captioner, MiniCaptioner
    from decoder.foundation.embedding import build_mini_clip
    from decoder.foundation.generator import build_mini_pipeline
    from decoder.foundation.generator import save_pipeline
    from decoder.foundation.tokenizer import WordTokenizer

    tok = WordTokenizer.from_texts(["a red car", "two houses"])
    clip = build_mini_clip(tok)
    clip.save_pretrained(tmp_path / "clip")
    v, c = clip.image_tokens_shape
    torch.manual_seed(0)
    save_pipeline(build_mini_pipeline(c, v, clip.text_tokens_shape[0]), tmp_path / "gen")
    Captioner(MiniCaptioner(tok.vocab_size, v, c, tok.context_length, d_model=32, n_layers=1, n_heads=2), tok).save_pretrained(tmp_path / "cap")
    assert main(["bench", "--json", "--clip", str(tmp_path / "clip"), "--generator", str(tmp_path / "gen"), "--captioner", str(tmp_path / "cap"),
                 "--steps", "2", "--repeats", "1"]) == 0
    report = json.loads(capsys.readouterr().out)["foundation"]
    for key in ("unclip_s", "refine_s", "caption_s", "clip_encode_image_s"):
        assert report[key] > 0
