"""Adapting the encoder to behaviour: LoRA on all-MiniLM-L6-v2, trained contrastively on item pairs.

Why peft's LoRA and a short loop of our own: peft is the maintained implementation of LoRA (inject,
train only the low-rank matrices, merge them back), and the loss is the one sentence-transformers
calls MultipleNegativesRankingLoss: for a batch of pairs (a_i, b_i), cross-entropy of a_i against
every b_j (and b_i against every a_j) over cosine / temperature. sentence-transformers' own trainer
would add `datasets`, `accelerate`'s Trainer stack and its callbacks for the same ~30 lines.

The merged weights are written as `model.safetensors` with the base model's config and tokenizer, so
the tuned encoder is an ordinary model folder: onnx_bert builds its ONNX graph like the base's, and
executors need no torch. Training runs in one process (the finetune job's driver), on the GPU when
torch sees one (`device = "auto"`), else on the CPU: the same code path.
Needs the `finetune` extra (torch, transformers, peft).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hybridrec.config import FinetuneConfig
from hybridrec.errors import ConfigError

log = logging.getLogger(__name__)

# Files of the base model folder the tuned folder needs besides the weights.
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
ADAPTER_DIR = "adapter"
TRAINING_FILE = "training.json"


@dataclass
class TrainingReport:
    pairs: int
    steps: int
    seconds: float
    device: str
    first_loss: float
    last_loss: float
    losses: list[float] = field(default_factory=list)  # mean loss per tenth of the steps
    model_bytes: int = 0
    adapter_bytes: int = 0
    trainable_params: int = 0
    versions: dict[str, str] = field(default_factory=dict)


def batches_without_repeats(a_ids: list[str], b_ids: list[str], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Pair indices in shuffled batches where no item appears twice: an item repeated in a batch would
    be its own negative. A pair that would repeat an item waits for a later batch; every pair is used
    once per epoch."""
    pending = list(rng.permutation(len(a_ids)))
    out = []
    while pending:
        batch, seen, later = [], set(), []
        for i in pending:
            if len(batch) < batch_size and a_ids[i] not in seen and b_ids[i] not in seen:
                batch.append(int(i))
                seen.update((a_ids[i], b_ids[i]))
            else:
                later.append(i)
        out.append(batch)
        pending = later
    return out


def _device(torch, requested: str) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("finetune.device = 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
    return "cuda" if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()) else "cpu"


def train_lora(base_path: str, texts_a: list[str], texts_b: list[str], ids: tuple[list[str], list[str]],
               cfg: FinetuneConfig, out_dir: Path) -> TrainingReport:
    """Trains LoRA on (texts_a[i], texts_b[i]) pairs; writes the merged model, the adapter and
    training.json into `out_dir`. `ids` are the pairs' item ids (no batch repeats an item)."""
    try:
        import peft
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ConfigError("hybridrec finetune needs torch, transformers and peft on the driver: "
                          "pip install 'hybridrec[finetune]'") from exc
    if not texts_a:
        raise ConfigError("finetune: no training pairs (see finetune.window_days, min_users)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = _device(torch, cfg.device)
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    base = AutoModel.from_pretrained(base_path, local_files_only=True, use_safetensors=True)
    lora = peft.LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                           target_modules=["query", "value"], bias="none")
    model = peft.get_peft_model(base, lora).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    rng = np.random.default_rng(cfg.seed)
    plan = [b for _ in range(cfg.epochs) for b in batches_without_repeats(*ids, cfg.batch_size, rng) if len(b) > 1]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, max(1, len(plan) // 10), len(plan))

    def encode(texts: list[str]):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt").to(device)
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    model.train()
    losses = []
    for step, batch in enumerate(plan):
        a = encode([texts_a[i] for i in batch])
        b = encode([texts_b[i] for i in batch])
        logits = a @ b.T / cfg.temperature
        labels = torch.arange(len(batch), device=device)
        loss = (torch.nn.functional.cross_entropy(logits, labels)
                + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            log.info("finetune step %d/%d loss %.4f (%.0f s)", step, len(plan), losses[-1], time.perf_counter() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir / ADAPTER_DIR))  # the adapter alone (safetensors), to audit or re-merge
    merged = model.merge_and_unload().to("cpu")
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    for name in MODEL_FILES:
        if (Path(base_path) / name).is_file():
            shutil.copyfile(Path(base_path) / name, out_dir / name)
    tenth = max(1, math.ceil(len(losses) / 10))
    report = TrainingReport(
        pairs=len(texts_a), steps=len(plan), seconds=round(time.perf_counter() - started, 1), device=device,
        first_loss=losses[0], last_loss=float(np.mean(losses[-tenth:])),
        losses=[float(np.mean(losses[i:i + tenth])) for i in range(0, len(losses), tenth)],
        model_bytes=(out_dir / "model.safetensors").stat().st_size,
        adapter_bytes=sum(p.stat().st_size for p in (out_dir / ADAPTER_DIR).rglob("*") if p.is_file()),
        trainable_params=sum(p.numel() for p in trainable),
        versions={"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__})
    (out_dir / TRAINING_FILE).write_text(json.dumps({"params": cfg.model_dump(), "report": asdict(report)}, indent=2))
    return report
