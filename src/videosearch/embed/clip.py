"""A CLIP-family retriever (any CLIP or SigLIP checkpoint through transformers): what a CPU user indexes with.

Frames sampled at `fps` (at most `max_frames`), squashed to the image tower's square input, are embedded in batches
of `frame_batch`; a video's vector is the normalised mean of its frame vectors, each segment's that of a window of
`segment_frames` frames every `segment_stride`. SQR's latents enter the text tower just before the position it
pools: CLIP's end-of-text token; SigLIP's last position, since its text is padded to a fixed length (the latents
take the place of padding).

    embedder = ClipEmbedder.from_pretrained("models/clip-vit-base-patch32")  # a transformers checkpoint folder
    engine, result = SearchEngine.build("videos/", embedder)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModel,
    AutoTokenizer,
    CLIPConfig,
    CLIPModel,
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipModel,
)
from transformers.masking_utils import create_causal_mask

from videosearch.config import build_config
from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import (
    Embedder,
    VideoEmbedding,
    masked_mean_embedding,
    model_errors,
    read_json_object,
    save_reference,
    segment_ranges,
    segment_spans_s,
    weights_digest,
)
from videosearch.errors import ConfigError

#: image normalisation of each family's released checkpoints, when a folder has no preprocessor_config.json
FAMILY_MEAN_STD = {"clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
                   "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
FAMILIES = tuple(FAMILY_MEAN_STD)


@dataclass
class ClipEmbedderConfig:
    """How videos are sampled and pooled; the weights come from the checkpoint folder `model_path`."""

    model_path: str = ""
    fps: float = 1.0
    max_frames: int = 64
    frame_batch: int = 32  # frames per forward pass of the image tower
    segment_frames: int = 4
    segment_stride: int = 2
    image_mean: tuple[float, float, float] | None = None  # None: the checkpoint's preprocessor_config.json
    image_std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ConfigError(f"clip.fps={self.fps!r} must be positive")
        for name in ("max_frames", "frame_batch", "segment_frames", "segment_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"clip.{name}={value!r} must be a positive integer")


class ClipEmbedder(Embedder):
    """Frames through the image tower, queries (and latents) through the text tower, into their shared space."""

    def __init__(self, model: CLIPModel | SiglipModel, tokenizer: PreTrainedTokenizerFast,
                 config: ClipEmbedderConfig | None = None) -> None:
        if not isinstance(model, (CLIPModel, SiglipModel)):
            raise ConfigError(f"{type(model).__name__} is not a CLIP or SigLIP model; give a CLIPModel or SiglipModel")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.family = "clip" if isinstance(model, CLIPModel) else "siglip"
        self.config = config or ClipEmbedderConfig()
        mean, std = FAMILY_MEAN_STD[self.family]
        self.config.image_mean = tuple(self.config.image_mean or mean)
        self.config.image_std = tuple(self.config.image_std or std)
        self.fps, self.max_frames = self.config.fps, self.config.max_frames
        self.frame_size = int(model.config.vision_config.image_size)
        text = model.text_model
        self._projection = model.text_projection if self.family == "clip" else text.head
        self.dim = int(self._projection.out_features)
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:  # type: ignore[override]
        if self._model_id is None:
            self._model_id = f"{self.family}-{self.dim}d-{weights_digest(self.model)}"
        return self._model_id

    @property
    def latent_dim(self) -> int:
        return int(self.model.text_model.config.hidden_size)

    @property
    def latent_norm(self) -> float:
        return float(self.model.text_model.embeddings.token_embedding.weight.norm(dim=-1).mean())

    # ---- text ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_text(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = [self._encode_text(texts[i: i + batch_size]) for i in range(0, len(texts), batch_size)]
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def embed_text_with_latents(self, texts: list[str], latents: torch.Tensor) -> torch.Tensor:
        if latents.dim() != 3 or latents.shape[0] != len(texts) or latents.shape[2] != self.latent_dim:
            raise ValueError(f"latents must be (B={len(texts)}, N, {self.latent_dim}), got {tuple(latents.shape)}")
        return self._encode_text(texts, latents)

    def mean_token_embedding(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                               max_length=int(self.model.text_model.config.max_position_embeddings))
        return masked_mean_embedding(self.model.text_model.embeddings.token_embedding, batch["input_ids"],
                                     batch["attention_mask"])

    def _encode_text(self, texts: list[str], latents: torch.Tensor | None = None) -> torch.Tensor:
        """The text tower's own forward, with `latents` (B, N, E) spliced in before the pooled position."""
        text = self.model.text_model
        n = 0 if latents is None else latents.shape[1]
        limit = int(text.config.max_position_embeddings)
        if n >= limit:
            raise ValueError(f"{n} latents leave no room for text in the text tower's {limit} positions")
        siglip = self.family == "siglip"
        batch = self.tokenizer(texts, padding="max_length" if siglip else True, truncation=True, max_length=limit - n,
                               return_tensors="pt")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        lengths = mask.sum(1)
        embeds = text.embeddings.token_embedding(ids)
        if latents is not None:
            at = lengths if siglip else lengths - 1  # SigLIP: after the text, over padding; CLIP: before its EOS
            ones = mask.new_ones(n)
            embeds = torch.stack([torch.cat([embeds[i, :a], latents[i].to(embeds.dtype), embeds[i, a:]])
                                  for i, a in enumerate(at.tolist())])
            mask = torch.stack([torch.cat([mask[i, :a], ones, mask[i, a:]]) for i, a in enumerate(at.tolist())])
        hidden = text.embeddings(inputs_embeds=embeds)
        if siglip:  # SigLIP reads its padding, as it was trained (transformers passes no mask either)
            hidden = text.encoder(inputs_embeds=hidden).last_hidden_state
            pooled = text.final_layer_norm(hidden)[:, -1]
        else:
            causal = create_causal_mask(config=text.config, inputs_embeds=hidden, attention_mask=mask,
                                        past_key_values=None)
            hidden = text.encoder(inputs_embeds=hidden, attention_mask=causal, is_causal=True).last_hidden_state
            pooled = text.final_layer_norm(hidden)[torch.arange(len(texts)), lengths - 1 + n]
        return F.normalize(self._projection(pooled), dim=-1)

    # ---- video --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (T, H, W, 3) RGB frames -> float (T, D) unit vectors, `frame_batch` frames per pass."""
        mean = torch.tensor(self.config.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.config.image_std).view(1, 3, 1, 1)
        side, out = self.frame_size, []
        for start in range(0, len(frames), self.config.frame_batch):
            x = torch.from_numpy(frames[start: start + self.config.frame_batch]).permute(0, 3, 1, 2).float() / 255.0
            if x.shape[-2:] != (side, side):
                x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
            features = self.model.get_image_features(pixel_values=(x - mean) / std).pooler_output
            out.append(F.normalize(features, dim=-1))
        return torch.cat(out)

    def embed_video(self, videos: list[VideoFrames]) -> list[VideoEmbedding]:
        if not videos:
            return []
        vectors = self.embed_frames(np.concatenate([v.frames for v in videos]))
        results, offset = [], 0
        for video in videos:
            frame_vectors, offset = vectors[offset: offset + len(video)], offset + len(video)
            ranges = segment_ranges(len(video), self.config.segment_frames, self.config.segment_stride)
            segments = F.normalize(torch.stack([frame_vectors[a:b].mean(0) for a, b in ranges]), dim=-1)
            results.append(VideoEmbedding(F.normalize(frame_vectors.mean(0), dim=-1).numpy().astype(np.float32),
                                          segments.numpy().astype(np.float32),
                                          np.asarray(segment_spans_s(video, ranges, self.fps), np.float32),
                                          video.duration_s))
        return results

    # ---- persistence --------------------------------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the settings and a reference to the checkpoint folder (an index does not copy the weights)."""
        save_reference(out_dir, "clip", asdict(self.config), self.model_id)

    @classmethod
    def from_pretrained(cls, path: str | Path, config: ClipEmbedderConfig | None = None) -> ClipEmbedder:
        """A saved embedder folder, or a transformers CLIP / SigLIP checkpoint folder (then `config` or defaults)."""
        folder = Path(path)
        meta = read_json_object(folder / "config.json")
        if meta.get("kind") == "clip":
            config = config or build_config(ClipEmbedderConfig, meta.get("embedder", {}), "clip embedder")
        elif meta.get("model_type") in FAMILIES:
            config = config or ClipEmbedderConfig()
            config.model_path = str(folder.resolve())
            processor = folder / "preprocessor_config.json"
            if processor.is_file() and config.image_mean is None:
                values = read_json_object(processor)
                config.image_mean, config.image_std = values.get("image_mean"), values.get("image_std")
        else:
            raise ConfigError(f"{folder} is neither a saved CLIP-family embedder nor a CLIP or SigLIP checkpoint "
                              f"(its config.json has model_type {meta.get('model_type')!r})")
        with model_errors(config.model_path, "a CLIP-family model"):
            model = AutoModel.from_pretrained(config.model_path)
            tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        return cls(model, tokenizer, config)


def save_random_clip(out_dir: str | Path, family: str = "clip", size: str = "tiny") -> Path:
    """Write a random-init CLIP or SigLIP checkpoint with a byte-level tokenizer: `tiny` for tests, `base` at the
    real ViT-B shapes (CLIP-B/32, SigLIP-B/16 at 224) for speed measurements. Returns the folder."""
    if family not in FAMILIES or size not in ("tiny", "base"):
        raise ConfigError(f"family must be one of {list(FAMILIES)} and size 'tiny' or 'base'")
    bos, eos, pad = "<|startoftext|>", "<|endoftext|>", "<pad>"
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([bos, eos, pad])
    ids = {t: backend.token_to_id(t) for t in (bos, eos, pad)}
    template = f"{bos} $A {eos}" if family == "clip" else f"$A {eos}"
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=list(ids.items()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad)
    special = {"bos_token_id": ids[bos], "eos_token_id": ids[eos], "pad_token_id": ids[pad]}
    if size == "tiny":
        text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, max_position_embeddings=64, **special)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      image_size=32, patch_size=8)
    else:
        text, vision = dict(**special), {}
    if family == "clip":
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32 if size == "tiny" else 512)
        model = CLIPModel(config)
    else:
        if size == "tiny":
            text["projection_size"] = vision["hidden_size"]
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
