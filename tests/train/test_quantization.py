"""4-bit base weights (QLoRA, `model.quantization`). hk_tune runs them on CUDA only, and a config
without a GPU is refused; the runs here go through bitsandbytes' CPU reference code instead of
its CUDA kernels, called through a local session on the CPU, which is the loop a one-GPU trial
runs. bitsandbytes' CPU code quantizes in blocks of 64 inputs, hence a 64-wide model."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from hk_tune.config.run import RunConfig
from hk_tune.errors import ConfigError
from hk_tune.train.checkpoint import load_checkpoint, save_checkpoint
from hk_tune.train.loop import build_inputs, run_loop
from hk_tune.train.model import check_model, trainable_counts
from hk_tune.train.session import LocalSession

bnb = pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def wide_llama(tiny_models, tmp_path_factory) -> str:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_models["llama"])
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 16
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("wide_llama")
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_models["llama"]).save_pretrained(folder)
    return str(folder)


def quantized(tiny_run, folder: str, task: str, quantization: str = "nf4",
              gradient_checkpointing: bool = False, **changes) -> dict:
    model = {"name": folder, "quantization": quantization,
             "gradient_checkpointing": gradient_checkpointing}
    return tiny_run("llama", task, model=model, **{"scaling": {"use_gpu": True}, **changes})


@pytest.mark.parametrize("task", ["classification", "causal_lm"])
def test_base_weights_are_4_bit_and_what_trains_is_unchanged(tiny_run, wide_llama, task):
    def built(quantization):
        cfg = RunConfig.from_dict(quantized(tiny_run, wide_llama, task, quantization))
        return build_inputs(cfg, LocalSession(cache=False))[-1]

    model, plain = built("nf4"), built("none")
    projections = [m for name, m in model.named_modules() if name.endswith("proj.base_layer")]
    assert projections and all(isinstance(m, bnb.nn.Linear4bit) for m in projections)
    assert trainable_counts(model) == trainable_counts(plain)
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in trained)  # LoRA and the head stay full precision
    # What trains starts where the unquantized model's does: the same seed draws the same init.
    plain_parameters = dict(plain.named_parameters())
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert torch.equal(parameter, plain_parameters[name]), name


def test_a_quantized_run_trains_and_gives_one_result_per_seed(tiny_run, wide_llama):
    """HiddenKey with its KL term and gradient checkpointing on 4-bit weights: finite losses, a
    consistency term that acts, and a run from the cached (deep-copied) quantized model equal
    to one loaded afresh."""
    raw = quantized(tiny_run, wide_llama, "classification", gradient_checkpointing=True,
                    dropout={"preset": "hiddenkey"},
                    optim={"max_steps": 6, "eval_every": 3, "lr": 2e-2})

    def history(session):
        run_loop(raw, session)
        return [{k: v for k, v in row.items() if "per_s" not in k and "time" not in k}
                for row in session.history]

    fresh, cached = history(LocalSession(cache=False)), history(LocalSession(cache=True))
    again = history(LocalSession(cache=True))  # from the cache this time
    assert fresh == cached == again
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in fresh)
    assert fresh[-1]["train_consistency_loss"] > 0


def test_a_checkpoint_of_a_quantized_run_restores_its_adapter(tiny_run, wide_llama, tmp_path):
    cfg = RunConfig.from_dict(quantized(tiny_run, wide_llama, "classification"))
    model = build_inputs(cfg, LocalSession(cache=False))[-1]
    trained = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in trained:
            p.add_(1.0)
    optimizer = torch.optim.AdamW(trained)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    save_checkpoint(tmp_path, model, optimizer, scheduler, 3, 0)

    restored = build_inputs(cfg, LocalSession(cache=False))[-1]
    optimizer = torch.optim.AdamW([p for p in restored.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    step, *_ = load_checkpoint(tmp_path, restored, optimizer, scheduler, 0)
    assert step == 3
    for (name, p), q in zip(model.named_parameters(), restored.parameters(), strict=True):
        if p.requires_grad:
            assert torch.equal(p, q), name


def test_4_bit_weights_without_a_gpu_are_refused(tiny_run, wide_llama):
    raw = quantized(tiny_run, wide_llama, "classification", scaling={"use_gpu": False})
    with pytest.raises(ConfigError, match=r"model.quantization: 'nf4' runs on CUDA GPUs only; "
                       r"set scaling.use_gpu: true \(in a search: resources.gpus_per_worker\)"):
        RunConfig.from_dict(raw)
    raw = quantized(tiny_run, wide_llama, "classification", quantization="int4")
    with pytest.raises(ConfigError, match=r"quantization: 'int4' is not allowed; allowed: "
                       r"\['none', 'nf4', 'fp4'\]"):
        RunConfig.from_dict(raw)


def test_4_bit_weights_without_bitsandbytes_are_refused(tiny_run, wide_llama, monkeypatch):
    cfg = RunConfig.from_dict(quantized(tiny_run, wide_llama, "classification", "fp4"))
    check_model(cfg.model, cfg.lora)  # installed: passes
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"model.quantization: 'fp4' needs bitsandbytes, which "
                       r"is not installed: pip install 'hk_tune\[qlora\]'"):
        check_model(cfg.model, cfg.lora)
