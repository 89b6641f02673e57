"""Tiny, randomly initialised models of real architectures, built offline, for tests and smoke runs.

Their outputs are meaningless, but every piece a real checkpoint has is there (config,
safetensors weights, a byte-level BPE tokenizer with a ChatML chat template, a Llava
processor with a CLIP image processor), so loading, chat templating, padding, image
preprocessing and batched generation are exercised exactly as with downloaded weights.
"""
from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
_CORPUS = [
    "a boy kicks a ball on a grass field", "a red double decker bus drives down the street",
    "two cats sleep on a sofa next to a remote control", "a plate of pasta with tomato sauce and basil",
    "sphere toy game competition journey", "the quick brown fox jumps over the lazy dog",
    'Return JSON: {"associations": [{"level": 1, "words": ["sphere", "orb", "globe"]}]}',
    "A man rides a wave on top of a surfboard. A kitchen with a stove, a sink and a window.",
]


def build_tiny_tokenizer(vocab_size: int = 600):
    """A byte-level BPE trained in memory on a few captions (so any text encodes), with ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", chat_template=CHATML, model_max_length=2048,
                                   model_input_names=["input_ids", "attention_mask"])


def _text_config(vocab_size: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       tie_word_embeddings=False, **extra)


def build_tiny_lm(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a 2-layer Llama causal LM (~40k parameters) and its tokenizer to ``out_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    out = Path(out_dir)
    tok = build_tiny_tokenizer()
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_text_config(len(tok), eos_token_id=eos, pad_token_id=pad, bos_token_id=None))
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_vlm(out_dir: str | Path, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> Path:
    """Save a tiny Llava (CLIP vision tower + Llama) with its processor; 16 image tokens per image."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, GenerationConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    out = Path(out_dir)
    tok = build_tiny_tokenizer()
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    image_token = tok.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=image_size, patch_size=patch_size, projection_dim=32)
    n_tokens = (image_size // patch_size) ** 2
    config = LlavaConfig(vision_config=vision, text_config=_text_config(len(tok), eos_token_id=eos, pad_token_id=pad),
                         image_token_index=image_token, image_seq_length=n_tokens, vision_feature_layer=-1,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>", chat_template=CHATML)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
