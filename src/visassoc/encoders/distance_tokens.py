"""Distance prompt tokens: K learned vectors per abstraction level, inserted into the vision transformer's
token sequence right after the patch embeddings and pooled the way the model normally pools.

The vision forward pass is spelled out here (embeddings -> [tokens] -> encoder -> pooling -> projection)
instead of hooking modules, so the tokens sit *before* the encoder for CLIP and SigLIP alike: for SigLIP
they reach the attention-pooling head through the encoder and so get gradient (the released code put them
after pooling, where they got none). CLIP pools its CLS token wherever it ends up; SigLIP has no CLS and
pools all positions with its attention head.
"""
from __future__ import annotations

import torch
from torch import nn

from visassoc.encoders.models import Backbone

POSITIONS = ("append", "prepend", "after_cls")


class PromptedEncoder(nn.Module):
    """Frozen dual encoder + ``prompts[level-1]`` (num_levels x K x hidden). K=0 means baseline only."""

    def __init__(self, backbone: Backbone, tokens_per_level: int = 5, num_levels: int = 5,
                 position: str = "append", init_std: float = 0.02, seed: int = 0):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.backbone = backbone
        self.model = backbone.model
        self.family = backbone.family
        self.position = position
        self.num_levels = num_levels
        self.tokens_per_level = tokens_per_level
        # tiny random bases are saved inside checkpoints: keep their untouched weights for that
        self.pristine = ({k: v.detach().clone() for k, v in self.model.state_dict().items()}
                         if backbone.is_tiny else None)
        hidden = self.model.config.vision_config.hidden_size
        gen = torch.Generator().manual_seed(seed)
        init = torch.randn(num_levels, tokens_per_level, hidden, generator=gen) * init_std
        self.prompts = nn.Parameter(init.to(next(self.model.parameters()).device))

    # ---- vision ---------------------------------------------------------------------------------
    def _insert(self, h: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Insert prompts ``p`` [B,K,D] into ``h`` [B,T,D]; return the sequence and the CLS index."""
        has_cls = self.family == "clip"
        if self.position == "append":
            return torch.cat([h, p], 1), 0
        if self.position == "prepend":
            return torch.cat([p, h], 1), p.shape[1]
        if has_cls:  # after_cls
            return torch.cat([h[:, :1], p, h[:, 1:]], 1), 0
        return torch.cat([p, h], 1), 0  # SigLIP has no CLS: after_cls == prepend

    def image_features(self, pixel_values: torch.Tensor, levels: torch.Tensor | int | None = None) -> torch.Tensor:
        """Unnormalised image embeddings; ``levels`` 1..L per image (or one int), None = baseline (no tokens)."""
        vm = self.model.vision_model
        h = vm.embeddings(pixel_values)
        cls = 0
        if levels is not None and self.tokens_per_level > 0:
            if isinstance(levels, int):
                levels = torch.full((h.shape[0],), levels, dtype=torch.long, device=h.device)
            if int(levels.min()) < 1 or int(levels.max()) > self.num_levels:
                raise ValueError(f"levels must be in 1..{self.num_levels}")
            h, cls = self._insert(h, self.prompts[levels.to(h.device) - 1].to(h.dtype))
        if self.family == "clip":
            h = vm.pre_layrnorm(h)
            h = vm.encoder(inputs_embeds=h).last_hidden_state
            return self.model.visual_projection(vm.post_layernorm(h[:, cls]))
        h = vm.post_layernorm(vm.encoder(inputs_embeds=h).last_hidden_state)
        return vm.head(h)

    # ---- text -----------------------------------------------------------------------------------
    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)

    # ---- trainable parts ------------------------------------------------------------------------
    def configure_trainable(self, unfreeze_last: int = 0, lora_rank: int = 0, lora_alpha: int = 16) -> None:
        """Freeze everything but the prompts, then optionally the last N vision blocks (+ post-norm and
        projection/head) or LoRA adapters on the vision attention. The text tower always stays frozen,
        which is what lets training cache caption embeddings."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.prompts.requires_grad_(self.tokens_per_level > 0)
        vm = self.model.vision_model
        if unfreeze_last:
            layers = vm.encoder.layers
            if not 0 < unfreeze_last <= len(layers):
                raise ValueError(f"unfreeze_last must be in 1..{len(layers)}")
            mods = list(layers[-unfreeze_last:]) + [vm.post_layernorm]
            mods.append(self.model.visual_projection if self.family == "clip" else vm.head)
            for m in mods:
                for p in m.parameters():
                    p.requires_grad_(True)
        if lora_rank:
            from peft import LoraConfig, inject_adapter_in_model

            names = r".*encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)"
            cfg = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=names)
            inject_adapter_in_model(cfg, vm)
            for n, p in vm.named_parameters():
                p.requires_grad_("lora_" in n)
            for m in (mods if unfreeze_last else []):
                for p in m.parameters():
                    p.requires_grad_(True)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_parameters())
        missing = [k for k in state if k not in params]
        if missing:
            raise ValueError(f"checkpoint has parameters this encoder lacks: {missing[:5]}")
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v.to(params[k].device, params[k].dtype))
