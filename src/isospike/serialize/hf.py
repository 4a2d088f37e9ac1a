"""Hugging Face models read as data: one reader for the source of a saved exact network
(:mod:`isospike.serialize.exact`) and for a model folder (``isospike convert --hf FOLDER``,
:func:`load_folder`).

Both go through the same closed sets and checks, and neither calls ``from_pretrained``, which
random-initializes any weight a folder lacks (and says so only in a log line):

- the family (``model_type``) is one of :data:`HF_MODEL_TYPES` and the class one of the names
  transformers' own auto mappings give for it; attention is ``eager`` or ``sdpa``;
- the config is JSON data whose keys never reach code, kernels, quantizers, other files or
  models (:data:`FORBIDDEN_CONFIG_KEYS`, private ``_`` keys, names of the config class's
  methods), whose activations are transformers' own (``ACT2FN``), whose label tables are bounded
  and whose integers fit 53 bits; every refusal names the key;
- the model is built on the ``meta`` device from the config (no storage), and the stored
  tensors must be exactly the ones it declares: none missing (tied copies aside), none extra,
  none empty, each of the declared shape and a float dtype, refused naming the tensors;
- only then is the real model built (its random initialization runs under a forked RNG, so the
  global torch RNG is untouched) and filled with the stored tensors.

Nothing is fetched: folders are read with ``local_files_only`` and ``HF_HUB_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` set only while they load (restored after), ``trust_remote_code`` is
never used, and transformers' own warnings are left as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from isospike._io import regular_file
from isospike.errors import FileFormatError, one_line
from isospike.schema import Field, is_identifier, parse_json

__all__ = ["ATTENTION", "FILE_MODEL_TYPES", "FORBIDDEN_CONFIG_KEYS", "HF_MODEL_TYPES", "HFModel", "architectures",
           "build", "check_config", "load_folder", "model_types", "offline"]

# Hugging Face model families (config model_type) isospike rebuilds: text models with a flat
# config whose classes the exact engine runs.
HF_MODEL_TYPES = ("bert", "roberta", "distilbert", "llama", "mistral", "qwen2", "qwen3", "gpt2")
# ... and the families a saved file's source may also be: vision transformers (no tokenizer, so
# not a `--hf` folder).
FILE_MODEL_TYPES = (*HF_MODEL_TYPES, "vit")
ATTENTION = ("eager", "sdpa")  # attention implementations (never a kernel fetched from the Hub)
# Config keys refused at any depth: code, remote kernels, quantizers, other files or models.
FORBIDDEN_CONFIG_KEYS = frozenset({
    "auto_map", "trust_remote_code", "custom_pipelines", "quantization_config", "attn_implementation",
    "experts_implementation", "name_or_path", "use_kernels", "kernel_config", "backbone", "backbone_config",
    "backbone_kwargs", "use_timm_backbone", "use_pretrained_backbone", "per_layer_config", "transformers_version",
    "adapter_config", "peft_config",
    # the config class's own plumbing (attribute remapping, sub-config tables, parallel plans)
    "attribute_map", "sub_configs", "sub_configs_defaults", "base_config_key", "base_model_tp_plan",
    "base_model_pp_plan", "base_model_ep_plan", "is_composition", "has_no_defaults_at_init"})
# Keys naming an activation function (looked up in transformers' ACT2FN table).
ACTIVATION_KEYS = ("hidden_act", "activation", "activation_function", "summary_activation", "hidden_activation",
                   "pooler_act")
MAX_LABELS = 2**16  # num_labels, and entries of id2label / label2id (transformers builds a table of num_labels)
MAX_CONFIG_INT = 2**53
MAX_CONFIG_BYTES = 16 * 2**20  # config.json, tokenizer_config.json
MAX_TOKENIZER_BYTES = 256 * 2**20  # each tokenizer file (a large vocabulary's tokenizer.json is about 35 MB)
# Folder configs carry these bookkeeping keys; they describe where the folder came from, not the model.
_FOLDER_METADATA = ("_name_or_path", "transformers_version")
# Float dtypes a folder's weights may have (cast to float32: exact networks compute in float32).
FOLDER_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
_SHARD = re.compile(r"[A-Za-z0-9_.\-]{1,200}\.safetensors\Z")
_PLAIN_NAME = re.compile(r"(?!\.)[A-Za-z0-9_.\-]{1,200}\Z")  # a file name without a path, not hidden


# ---------------------------------------------------------------------------------- closed sets
def architectures(model_type: str) -> tuple[str, ...]:
    """The model class names transformers' auto mappings give for ``model_type``."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for attr in dir(modeling_auto):
        mapping = getattr(modeling_auto, attr)
        if attr.startswith("MODEL") and attr.endswith("_MAPPING_NAMES") and isinstance(mapping, dict):
            value = mapping.get(model_type)
            names.update([value] if isinstance(value, str) else value if isinstance(value, (tuple, list)) else [])
    return tuple(sorted(n for n in names if isinstance(n, str)))


def _mapped(mapping: str, model_type: str) -> str | None:
    from transformers.models.auto import modeling_auto

    value = getattr(modeling_auto, mapping, {}).get(model_type)
    return value if isinstance(value, str) else value[0] if isinstance(value, (tuple, list)) and value else None


def model_types(files: bool = False) -> tuple[str, ...]:
    """:data:`HF_MODEL_TYPES` (``files``: :data:`FILE_MODEL_TYPES`, what a saved file's source
    may be) that this transformers knows."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return tuple(t for t in (FILE_MODEL_TYPES if files else HF_MODEL_TYPES) if t in CONFIG_MAPPING_NAMES)


def check_config(f: Field, model_type: str, architecture: str, error: type[Exception] = FileFormatError) -> None:
    """A config as data (see the module docstring); ``error`` is raised naming the key."""
    from transformers.activations import ACT2FN

    def refuse(key: str, where: str, why: str) -> Exception:
        return error(f"{f.source}: refusing the config key {key[:60]!r} at {where}: {why}")

    def walk(field: Field, depth: int) -> None:
        v = field.value
        if isinstance(v, dict):
            for key, entry in field.object().items():
                if key in FORBIDDEN_CONFIG_KEYS or key.startswith("_") or (depth == 0 and not is_identifier(key)):
                    raise refuse(key, field.where, "a config holds no code, kernels, quantizers, backbones or private "
                                 "settings")
                walk(entry, depth + 1)
        elif isinstance(v, list):
            for entry in field.items(max_len=1_000_000):
                walk(entry, depth + 1)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_CONFIG_INT:
            raise field.error("an integer of magnitude at most 2**53")
        elif not (v is None or isinstance(v, (bool, int, float, str))):
            raise field.error("JSON data")

    walk(f, 0)
    top = f.object()
    if top["model_type"].value != model_type:
        raise error(f"{f.source}: the config's model_type {str(top['model_type'].value)[:40]!r} is not the file's "
                    f"{model_type!r}")
    for key in ("dtype", "torch_dtype"):
        if key in top and top[key].value not in (None, "float32"):
            raise error(f"{f.source}: the config's {key} is {str(top[key].value)[:40]!r}: exact networks are float32")
    arch = top.get("architectures")
    if arch is not None and not arch.is_none and [a.value for a in arch.items(max_len=8)] != [architecture]:
        raise error(f"{f.source}: the config's architectures {str(arch.value)[:80]} are not the file's {architecture!r}")
    for key in ACTIVATION_KEYS:
        act = top.get(key)
        if act is not None and not act.is_none and (not isinstance(act.value, str) or act.value not in ACT2FN):
            raise refuse(key, f.where, f"{str(act.value)[:40]!r} is not one of transformers' activations "
                         f"({', '.join(sorted(ACT2FN)[:8])}, ...)")
    labels = top.get("num_labels")
    if labels is not None and (isinstance(labels.value, bool) or not isinstance(labels.value, int)
                               or not 0 <= labels.value <= MAX_LABELS):
        raise refuse("num_labels", f.where, f"it must be a whole number in [0, {MAX_LABELS}] (transformers builds a "
                     "label table of that size)")
    for key in ("id2label", "label2id"):
        table = top.get(key)
        if table is not None and not table.is_none and (not isinstance(table.value, dict)
                                                        or len(table.value) > MAX_LABELS):
            raise refuse(key, f.where, f"it must be a table of at most {MAX_LABELS} labels")


# ---------------------------------------------------------------------------------- building
def aliases(state: dict[str, Tensor]) -> dict[str, str]:
    """Key -> the earlier key holding the same tensor (tied weights)."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for k, v in state.items():
        if id(v) in first:
            tied[k] = first[id(v)]
        else:
            first[id(v)] = k
    return tied


def _listed(keys: list[str]) -> str:
    return f"{keys[:5]}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def check_stored(expected: dict[str, Tensor], stored: dict[str, Any], tied: dict[str, str], source: str,
                 dtypes: tuple[torch.dtype, ...] | None = None, fix: str = "the file is damaged",
                 what: str = "the source model") -> None:
    """The stored tensors (or their meta stand-ins) are exactly the expected ones (tied copies
    may be left out), each of the expected shape, and of the expected dtype (``dtypes``: of one
    of these, to be cast), none missing, extra or empty; one error naming the tensors."""
    missing = sorted(set(expected) - set(stored) - set(tied))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise FileFormatError(f"{source}: the stored tensors do not match {what}: missing {_listed(missing)}, "
                              f"unexpected {_listed(unexpected)}; {fix}")
    for key, value in stored.items():
        want = expected[key]
        right_dtype = value.dtype == want.dtype if dtypes is None else value.dtype in dtypes
        if tuple(value.shape) != tuple(want.shape) or not right_dtype:
            raise FileFormatError(f"{source}: the tensor {key!r} is stored as {value.dtype} {tuple(value.shape)} but "
                                  f"{what} declares {want.dtype} {tuple(want.shape)}; {fix}")
    empty = sorted(k for k, v in stored.items() if v.numel() == 0)
    if empty and dtypes is not None:
        raise FileFormatError(f"{source}: the tensors {_listed(empty)} are empty (a dimension of size 0); {fix}")


def _plan(config_field: Field, model_type: str, architecture: str, attn: str, source: str) -> tuple[type, Any]:
    """The transformers class and config object a checked config describes."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config_cls = CONFIG_MAPPING[model_type]
    cls = getattr(transformers, architecture, None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel) and cls.config_class is not None
            and issubclass(config_cls, cls.config_class)):
        raise FileFormatError(f"{source}: {architecture!r} is not a transformers model class of model_type "
                              f"{model_type!r}")
    if getattr(config_cls, "sub_configs", None):
        raise FileFormatError(f"{source}: model_type {model_type!r} has nested configs; isospike rebuilds flat ones")
    for key in config_field.value:  # a key naming a method would replace it on the config object
        if callable(getattr(config_cls, key, None)):
            raise FileFormatError(f"{source}: refusing the config key {key[:60]!r}: it names a method of "
                                  f"{config_cls.__name__}, not a setting")
    try:
        config = config_cls.from_dict(dict(config_field.value))
        config._attn_implementation = attn
    except Exception as exc:  # noqa: BLE001 - transformers' own refusals of a bad config
        raise FileFormatError(f"{source}: the config does not describe a {model_type} model "
                              f"({type(exc).__name__}: {one_line(exc, 200)})") from None
    return cls, config


def build(config_field: Field, model_type: str, architecture: str, attn: str, stored: dict[str, Tensor], source: str,
          *, cast: bool = False, fix: str = "the file is damaged") -> nn.Module:
    """The model a checked config describes, filled with ``stored`` (checked first against the
    model built on meta; ``cast``: float16/bfloat16 tensors accepted and cast to float32)."""
    cls, config = _plan(config_field, model_type, architecture, attn, source)
    layers = getattr(config, "num_hidden_layers", 0)
    if not isinstance(layers, int) or not 0 <= layers <= len(stored):
        raise FileFormatError(f"{source}: the config declares {str(layers)[:20]} layers but only {len(stored)} tensors "
                              f"({_listed(sorted(stored))}) are stored; {fix}")

    def construct() -> nn.Module:
        try:
            return cls(config)
        except Exception as exc:  # noqa: BLE001 - whatever an inconsistent config makes the constructor raise
            raise FileFormatError(f"{source}: cannot build {architecture} from the config "
                                  f"({type(exc).__name__}: {one_line(exc, 200)})") from None

    with torch.device("meta"):  # names and shapes first, nothing allocated
        shell = construct()
    expected = shell.state_dict(keep_vars=True)
    tied = aliases(expected)
    check_stored(expected, stored, tied, source, tuple(FOLDER_DTYPES.values()) if cast else None, fix,
                 f"the {architecture} its config describes")
    in_state = {id(t) for t in expected.values()}
    extra = sum(b.numel() for b in shell.buffers() if id(b) not in in_state)  # computed, not stored (rotary tables)
    if extra > max(2**24, sum(t.numel() for t in stored.values())):
        raise FileFormatError(f"{source}: the config makes {architecture} compute {extra} buffer values beyond its "
                              "stored tensors; it is damaged or crafted")
    del shell
    with torch.random.fork_rng(devices=[]):  # the random initialization (overwritten) leaves the global RNG as it was
        model = construct()
    if cast:
        stored = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in stored.items()}
    try:
        missing, unexpected = model.load_state_dict(stored, strict=False)
    except RuntimeError as exc:
        raise FileFormatError(f"{source}: the stored tensors do not fit {architecture} ({one_line(exc, 200)})") from None
    own = model.state_dict(keep_vars=True)
    if unexpected or set(missing) - set(tied) or any(own[k] is not own[tied[k]] for k in missing):
        raise FileFormatError(f"{source}: the stored tensors do not fit {architecture} (missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}); {fix}")
    return model


# ---------------------------------------------------------------------------------- folders
_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_OFFLINE_LOCK = threading.Lock()
_offline_depth = 0
_offline_before: dict[str, str | None] = {}


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` inside the block, the environment as it
    was after it (transformers reads them when it is used; the folder readers also pass
    ``local_files_only``). Nested and concurrent blocks share one setting, undone when the last
    one ends."""
    global _offline_depth, _offline_before
    with _OFFLINE_LOCK:
        if _offline_depth == 0:
            _offline_before = {k: os.environ.get(k) for k in _OFFLINE}
            os.environ.update({k: "1" for k in _OFFLINE})
        _offline_depth += 1
    try:
        yield
    finally:
        with _OFFLINE_LOCK:
            _offline_depth -= 1
            if _offline_depth == 0:
                for k, v in _offline_before.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


@dataclass
class HFModel:
    """A model read from a folder: ``model`` in eval mode (the base model of an encoder, the
    causal LM of a decoder), its ``tokenizer``, whether it is a ``decoder``, and the class the
    folder's weights were checked against (``architecture``)."""

    tokenizer: Any
    model: nn.Module
    decoder: bool
    architecture: str


def _json_file(path: Path, folder: Path, limit: int) -> Any:
    size = regular_file(path, "isospike convert --hf").st_size
    if size > limit:
        raise ValueError(f"{folder}: {path.name} holds {size} bytes, more than the {limit} a model folder's "
                         f"{path.name} may (isospike.serialize.hf); the folder is damaged or crafted")
    return parse_json(path.read_bytes(), str(path), "the file")


def _weights(folder: Path) -> dict[str, Tensor]:
    """The tensors of a folder's safetensors weights (``model.safetensors``, or the shards its
    ``model.safetensors.index.json`` lists), each of a float dtype, read after their declared
    sizes were checked against the files and the memory available."""
    from isospike.serialize import read_tensors

    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").exists():
        files = [folder / "model.safetensors"]
    elif index.exists():
        table = Field(_json_file(index, folder, MAX_CONFIG_BYTES), "index", str(index))
        shards = {v.text(256) for v in table["weight_map"].object().values()}
        bad = sorted(s for s in shards if not _SHARD.match(s))
        if bad:
            raise FileFormatError(f"{index}: the shard names {bad[:3]} are not plain .safetensors file names in the folder")
        files = [folder / s for s in sorted(shards)]
    else:
        raise ValueError(f"{folder}: no model.safetensors (or model.safetensors.index.json) to read the weights from")
    tensors: dict[str, Tensor] = {}
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"{folder}: the weights file {path.name} is missing")
        _, part = read_tensors(path, "isospike convert --hf", "a model folder's weights are safetensors files written "
                               "by save_pretrained", dtypes={**FOLDER_DTYPES, "I64": torch.int64})
        clash = sorted(set(part) & set(tensors))
        if clash:
            raise FileFormatError(f"{path}: the tensors {_listed(clash)} are stored twice in the folder")
        tensors.update(part)
    return tensors


def _reconcile(stored: dict[str, Tensor], cls: type, config: Any, source: str) -> dict[str, Tensor]:
    """``stored`` under the names the class uses: the base-model prefix added or removed as
    transformers does (``h.0...`` for ``transformer.h.0...``), without the tensors transformers
    itself declares are not weights (its ``_keys_to_ignore_on_load_unexpected`` patterns, and
    non-persistent buffers it computes, such as BERT's ``position_ids``, when their shape is its
    own)."""
    with torch.device("meta"):
        try:
            shell = cls(config)
        except Exception as exc:  # noqa: BLE001 - reported with the config's name by build() as well
            raise FileFormatError(f"{source}: cannot build {cls.__name__} from the config "
                                  f"({type(exc).__name__}: {one_line(exc, 200)})") from None
    expected = set(shell.state_dict())
    computed = {name: b for name, b in shell.named_buffers() if name not in expected}
    prefix = f"{getattr(cls, 'base_model_prefix', '')}."
    out: dict[str, Tensor] = {}
    for key, value in stored.items():
        name = key
        if name not in expected and name not in computed and prefix != "." and f"{prefix}{key}" in expected | set(computed):
            name = f"{prefix}{key}"
        elif name not in expected and name not in computed and key.startswith(prefix) \
                and key[len(prefix):] in expected | set(computed):
            name = key[len(prefix):]
        if name in computed and tuple(computed[name].shape) == tuple(value.shape):
            continue  # a buffer the model computes itself
        if name not in expected and any(re.search(p, name) for p in getattr(cls, "_keys_to_ignore_on_load_unexpected",
                                                                            None) or ()):
            continue
        out[name] = value
    return out


def load_folder(folder: str | Path) -> HFModel:
    """The model and tokenizer of a local Hugging Face folder, read as data (see :func:`_load_folder`)."""
    from isospike.serialize import RAW_ERRORS

    try:
        return _load_folder(folder)
    except RAW_ERRORS as exc:  # a check missed: still one line naming the folder
        raise FileFormatError(f"{folder}: the folder does not describe a model isospike can build "
                              f"({type(exc).__name__}: {one_line(exc, 200)}); it is damaged or crafted") from None


def check_hf_folder(folder: str | Path) -> Path:
    """``folder`` when it is a Hugging Face model folder whose weights are safetensors; otherwise
    one clear error (never transformers' traceback): isospike loads no pickled weights
    (``pytorch_model.bin``) and runs no code a folder ships (``trust_remote_code`` stays off)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: pass a Hugging Face model folder (config.json + "
                                "model.safetensors + tokenizer files)")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a Hugging Face model folder")
    if not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        found = f"its weights are pickled ({', '.join(pickled[:3])})" if pickled else "it holds no weights"
        raise ValueError(f"{folder}: {found}; isospike loads only safetensors weights (a pickle can run code). "
                         "Convert them once where you trust the file: AutoModel.from_pretrained(folder)"
                         ".save_pretrained(folder, safe_serialization=True)")
    return folder


def _load_folder(folder: str | Path) -> HFModel:
    """The model and tokenizer of a local Hugging Face folder, read as data (see the module
    docstring): ``config.json`` through :func:`check_config`, the safetensors weights checked
    name by name and shape by shape against the model the config describes (float16/bfloat16
    cast to float32), the tokenizer offline without remote code. Every refusal is one
    ValueError/FileFormatError naming the folder, the file and the key or tensors."""
    folder = check_hf_folder(folder)
    for entry in sorted(folder.iterdir()):  # a FIFO or device among the files would block a reader
        if not (entry.is_dir() or entry.is_file()):
            regular_file(entry, "isospike convert --hf")
    try:
        import transformers  # noqa: F401 - the families' classes
    except ImportError:
        raise ValueError(f"{folder}: reading a Hugging Face folder needs transformers (pip install transformers)") \
            from None
    with offline():
        source = str(folder / "config.json")
        cfg = Field(_json_file(folder / "config.json", folder, MAX_CONFIG_BYTES), "config", source)
        top = cfg.object()
        model_type = top["model_type"].choice(model_types(), "Hugging Face model types isospike reads")
        attn = "sdpa"
        values = dict(cfg.value)
        for key in ("attn_implementation", "_attn_implementation"):
            if key in values:
                attn = cfg[key].choice(ATTENTION) if not cfg[key].is_none else attn
                values.pop(key)
        for key in _FOLDER_METADATA:
            values.pop(key, None)
        for key in ("dtype", "torch_dtype"):  # the weights' own dtype: read, then cast to float32
            if key in values:
                if values[key] not in (None, "float32", "float16", "bfloat16"):
                    raise FileFormatError(f"{source}: refusing the config key {key!r} = {str(values[key])[:40]!r}: "
                                          "isospike reads float32, float16 or bfloat16 weights")
                values[key] = "float32"
        architecture = _architecture(Field(values, "config", source), model_type)
        config = Field(values, "config", source)
        check_config(config, model_type, architecture)
        cls, config_obj = _plan(config, model_type, architecture, attn, source)
        stored = _reconcile(_weights(folder), cls, config_obj, source)
        fix = ("the folder's config.json does not describe its weights (a missing weight would be random); re-save the "
               "model with save_pretrained where you trust it")
        model = build(config, model_type, architecture, attn, stored, str(folder), cast=True, fix=fix).eval()
        tokenizer = _tokenizer(folder)
    decoder = architecture == _mapped("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", model_type)
    if not decoder and architecture != _mapped("MODEL_MAPPING_NAMES", model_type):
        base = getattr(model, "base_model", None)
        model = base.eval() if isinstance(base, nn.Module) else model
    return HFModel(tokenizer, model, decoder, architecture)


def _architecture(cfg: Field, model_type: str) -> str:
    """The class a folder's weights are checked against: the one its config names (one of the
    auto mappings' for the family), else the family's base model (causal LM when ``is_decoder``)."""
    top = cfg.object()
    names = top.get("architectures")
    if names is not None and not names.is_none:
        listed = list(names.items(max_len=8))
        if len(listed) != 1:
            raise names.error("one model class name")
        return listed[0].choice(architectures(model_type), f"{model_type} classes")
    decoder = top.get("is_decoder")
    kind, mapping = ("causal LM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES") if decoder is not None and decoder.value is True \
        else ("base model", "MODEL_MAPPING_NAMES")
    name = _mapped(mapping, model_type)
    if name is None:
        raise FileFormatError(f"{cfg.source}: transformers has no {kind} class for model_type {model_type!r}")
    return name


def _tokenizer(folder: Path) -> Any:
    """The folder's tokenizer, offline and without remote code; its files bounded in size and its
    config free of code references."""
    from transformers import AutoTokenizer

    for name in ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "special_tokens_map.json",
                 "tokenizer_config.json"):
        path = folder / name
        if path.exists() and regular_file(path, "isospike convert --hf").st_size > MAX_TOKENIZER_BYTES:
            raise ValueError(f"{folder}: {name} is larger than {MAX_TOKENIZER_BYTES // 2**20} MiB; the folder is damaged "
                             "or crafted")
    config_path = folder / "tokenizer_config.json"
    if config_path.exists():
        tok_cfg = Field(_json_file(config_path, folder, MAX_CONFIG_BYTES), "tokenizer_config", str(config_path))
        for key, value in tok_cfg.object().items():
            if key in ("auto_map", "trust_remote_code"):
                raise FileFormatError(f"{config_path}: refusing the key {key!r}: a tokenizer config holds no code "
                                      "references (isospike never runs code a folder ships)")
            if key.endswith(("_file", "_files")) and not value.is_none and not (
                    isinstance(value.value, str) and _PLAIN_NAME.match(value.value) and (folder / value.value).is_file()):
                raise FileFormatError(f"{config_path}: refusing the key {key!r} = {str(value.value)[:60]!r}: a tokenizer "
                                      "file is named by a plain file name inside the folder (no paths to other files)")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - tokenizers and transformers raise anything on a bad file
        raise ValueError(f"{folder}: its tokenizer files (tokenizer.json, tokenizer_config.json, vocab...) cannot be read "
                         f"({type(exc).__name__}: {one_line(exc, 200)}); the folder is damaged or crafted") from None

