"""SFT data of the policy: one verification turn per example, written from the synthetic world's ground truth.

Run: `videosearch train sft-data --world runs/world --index runs/index_train --out runs/sft/train.jsonl`.

Each example shows the policy one retrieved video for a query; its target is the turn the policy should
write (`policy.format.format_output`): the reasoning of `train.reasoning`, the verdict, the span on a match,
then `<REFINE>` (SQR) or, in HQR mode, the rewritten query. For a policy that reads its frame encoder's event log
(`--frame-encoder`), the reasoning quotes that log, decoded and read exactly as the policy will see it. The top-1
video of the engine gives one turn per query; matched and not-matched turns are then balanced 50/50. Deviation
from the reference release: it balances by dropping turns of the larger class; we add turns instead (the
ground-truth video, as if a later turn found it, or the highest-ranked wrong video), so no query is lost.

`read_reference_sft` reads the reference release's one-turn SFT file (`sft_data/train_oneturn.json`)
into the same records.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from videosearch.atomic import write_text_atomic
from videosearch.corpus.annotations import read_moments
from videosearch.corpus.types import Moment
from videosearch.corpus.video import read_frames
from videosearch.corpus.world import SPLITS, load_video_specs
from videosearch.corpus.world_queries import Claim
from videosearch.corpus.world_spec import VideoSpec
from videosearch.engine import SearchEngine
from videosearch.errors import AnnotationError, ConfigError, VideosearchError
from videosearch.folders import FolderInUseError
from videosearch.policy.event_log import LogEntry, read_clip
from videosearch.policy.format import format_output, parse_output
from videosearch.policy.frame_encoder import FrameEncoder
from videosearch.policy.policy import PolicyConfig
from videosearch.progress import track
from videosearch.train.reasoning import rewrite_query, verification_reasoning

logger = logging.getLogger(__name__)

MODES = ("sqr", "hqr")
_QUERY_IN_USER = re.compile(r'Query:\s*"(.*)"')  # greedy on one line: the query may itself hold quotes


@dataclass(frozen=True)
class SFTExample:
    """One supervised turn: a query, the video the policy is shown, and the text it should write."""

    qid: str
    query: str
    video_id: str  # the video shown to the policy
    gt_video_id: str  # "" when unknown (a not-matched record of the reference release)
    matched: bool
    span_s: tuple[float, float] | None  # the ground-truth span in seconds, on a match
    target: str  # the assistant turn, in the grammar of `policy.format`
    mode: str  # "sqr" (ends with <REFINE>) or "hqr" (a not-matched turn ends with <query>...</query>)
    seen: tuple[str, ...] = ()  # videos judged at earlier turns of the episode (excluded from its search)


@dataclass(frozen=True)
class SFTStats:
    """What one build produced; `disagreements` counts turns dropped because the reasoning contradicted the
    ground truth (it should be 0)."""

    queries: int
    top1_correct: int
    matched: int
    not_matched: int
    hqr: int
    disagreements: int
    family_negatives: int = 0  # not-matched examples showing a video of the ground truth's family


@dataclass(frozen=True)
class _Query:
    qid: str
    query: str
    gt_video_id: str
    claim: Claim
    ranking: tuple[str, ...]


@dataclass(frozen=True)
class _Turn:
    query: _Query
    shown: str
    matched: bool
    think: str
    span_s: tuple[float, float] | None


# ---- building ---------------------------------------------------------------------------------------------------
def build_world_sft_data(world_dir: str | Path, index_dir: str | Path, split: str = "train", *, seed: int = 0,
                         hqr_fraction: float = 0.25, max_examples: int | None = None, family_negatives: float = 0.0,
                         k: int = 10, reader: PolicyConfig | None = None) -> tuple[list[SFTExample], SFTStats]:
    """Rank every query of `<world>/<split>.jsonl` with the index, then `build_sft_examples`.

    Args:
        world_dir: the synthetic world (`videosearch world generate`).
        index_dir: an index built over `<world>/videos/<split>`.
        split: "train", "val" or "test".
        seed, hqr_fraction, max_examples, family_negatives: as in `build_sft_examples`.
        k: ranking depth; the highest-ranked wrong video (and a family negative) must be within it.
        reader: the policy the examples are for; when it names a frame encoder, the reasoning quotes the event
            log of each shown video, sampled at the policy's fps and frame limit.

    Raises:
        ConfigError: the world is incomplete or the split unknown.
        VideosearchError: the index is missing, or holds videos that are not of this split.
    """
    _check_sampling(hqr_fraction, max_examples, family_negatives)  # before ranking: a bad option fails at once
    annotations, specs, ranked, logs = _load_split(world_dir, index_dir, split, reader, k)
    return build_sft_examples(annotations, specs, ranked, seed=seed, hqr_fraction=hqr_fraction,
                              max_examples=max_examples, family_negatives=family_negatives, logs=logs)


def build_world_refine_turns(world_dir: str | Path, index_dir: str | Path, split: str = "train", *, turns: int = 2,
                             seed: int = 0, max_examples: int | None = None,
                             reader: PolicyConfig | None = None) -> list[SFTExample]:
    """The turns after which an SQR episode refines, for the SQR-head stage: for queries whose top-1 video is
    wrong, the not-matched turn showing each of the first `turns` wrong videos of the ranking (the walk's turns,
    stopping at the ground truth), the earlier ones `seen`. Queries are drawn at random, all their turns kept,
    until `max_examples`. Inputs and errors as `build_world_sft_data`."""
    if turns < 1:
        raise ConfigError(f"turns must be >= 1 (got {turns})")
    _check_sampling(0.0, max_examples, 0.0)
    annotations, rows, ranked, logs = _load_split(world_dir, index_dir, split, reader, max(10, turns))
    queries = _world_queries(annotations, ranked)
    specs = {vid: VideoSpec.from_dict(row) for vid, row in rows.items()}
    random.Random(seed).shuffle(queries)
    walked: list[tuple[_Turn, tuple[str, ...]]] = []
    for query in queries:
        if max_examples is not None and len(walked) >= max_examples:
            break
        shown = query.ranking[: query.ranking.index(query.gt_video_id)] if query.gt_video_id in query.ranking \
            else query.ranking
        for depth, video in enumerate(shown[:turns]):
            turn = _judge(query, video, specs)
            if turn is not None:  # None: the reasoning disagrees with the ground truth (counted by SFT data)
                walked.append((turn, tuple(shown[:depth])))
    walked = walked[:max_examples]
    if logs is not None:
        walked = [(_read_log(t, specs[t.shown], logs(t.shown)), seen)
                  for t, seen in track(walked, "reading the event logs")]
    return [replace(_example(t, "sqr"), seen=seen) for t, seen in walked]


def _load_split(world_dir: str | Path, index_dir: str | Path, split: str, reader: PolicyConfig | None, k: int,
                ) -> tuple[Path, dict[str, dict], dict[str, list[str]],
                           Callable[[str], tuple[str, list[LogEntry]]] | None]:
    """The split's annotations file, its video specs, each query's top-k by the index and (with a frame encoder)
    the event logs of its videos."""
    world = Path(world_dir)
    if not (world / "world.json").exists():
        raise ConfigError(f"{world} is not a complete synthetic world: run `videosearch world generate --out {world}`")
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not a split of the world; use one of {', '.join(SPLITS)}")
    engine = SearchEngine.load(index_dir)
    annotations = world / f"{split}.jsonl"
    ranked = rank_videos(engine, read_moments(annotations).moments, k=k)
    logs = None
    if reader is not None and reader.frame_encoder:
        logs = _event_logs(FrameEncoder.from_pretrained(reader.frame_encoder), world / "videos" / split, reader)
    return annotations, load_video_specs(world, split), ranked, logs


def _check_sampling(hqr_fraction: float, max_examples: int | None, family_negatives: float) -> None:
    for name, share in (("hqr_fraction", hqr_fraction), ("family_negatives", family_negatives)):
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1] (got {share})")
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples must be >= 1 or None for all (got {max_examples})")


def _event_logs(encoder: FrameEncoder, videos: Path,
                reader: PolicyConfig) -> Callable[[str], tuple[str, list[LogEntry]]]:
    """video id -> the encoder's event log of `<videos>/<id>.mp4`, read once."""
    size = (encoder.config.frame_size, encoder.config.frame_size)

    @cache
    def log(video_id: str) -> tuple[str, list[LogEntry]]:
        clip = read_frames(videos / f"{video_id}.mp4", fps=reader.fps, max_frames=reader.max_frames, size=size)
        return read_clip(encoder, clip)
    return log


def rank_videos(engine: SearchEngine, moments: Sequence[Moment], k: int = 10,
                batch_size: int = 64) -> dict[str, list[str]]:
    """qid -> the engine's top-k video ids for the moment's query, best first."""
    ranked = {}
    for start in range(0, len(moments), batch_size):
        chunk = moments[start: start + batch_size]
        hits = engine.search_by_vector(engine.encode_queries([m.query for m in chunk]), k=k)
        ranked.update({m.qid: [h.video_id for h in row] for m, row in zip(chunk, hits)})
    return ranked


def build_sft_examples(annotations_path: str | Path, video_specs: Mapping[str, dict],
                       ranked: Mapping[str, Sequence[str]], *, seed: int, hqr_fraction: float = 0.25,
                       max_examples: int | None = None, family_negatives: float = 0.0,
                       logs: Callable[[str], tuple[str, list[LogEntry]]] | None = None,
                       ) -> tuple[list[SFTExample], SFTStats]:
    """Verification turns for every query of a world split, balanced 50/50 matched / not matched, shuffled.

    Args:
        annotations_path: the world's `<split>.jsonl` (each line carries the query's `claim`).
        video_specs: video id -> spec row, as `corpus.world.load_video_specs` returns them.
        ranked: qid -> video ids ranked by the engine, best first.
        seed: makes the balancing, the HQR choice, the subset and the order deterministic.
        hqr_fraction: the share of examples in HQR mode (rewritten query instead of <REFINE>).
        max_examples: keep at most this many (balanced) examples.
        family_negatives: the share of not-matched turns that show, instead of the top-ranked wrong video, the
            highest-ranked video of the ground truth's family: a variant with one thing changed (scene, colour,
            size, direction, event order), the near-duplicates a verdict most often accepts.
        logs: video id -> its event log (scene, entries); the reasoning of each kept turn then quotes it.

    Returns:
        The examples, in shuffled order, and their counts.

    Raises:
        AnnotationError: the annotations are malformed or have no `claim` (not a synthetic world).
        VideosearchError: a query has no ranking, or a ranked video has no spec (the index is not over this split).
    """
    _check_sampling(hqr_fraction, max_examples, family_negatives)
    rng = random.Random(seed)
    specs = {vid: VideoSpec.from_dict(row) for vid, row in video_specs.items()}
    queries = _world_queries(Path(annotations_path), ranked)
    first = [_judge(q, q.ranking[0], specs) for q in queries]
    turns = [t for t in first if t is not None]
    n_matched = sum(t.matched for t in turns)
    if n_matched < len(turns) - n_matched:  # show the ground truth to queries whose top-1 is wrong
        pool = [(q, q.gt_video_id) for q in queries if q.ranking[0] != q.gt_video_id]
    else:  # show the highest-ranked wrong video (second, as the top-1 is right) to queries whose top-1 is right
        pool = [(q, q.ranking[1]) for q in queries if q.ranking[0] == q.gt_video_id and len(q.ranking) > 1]
    rng.shuffle(pool)
    added = [_judge(q, shown, specs) for q, shown in pool[: abs(len(turns) - 2 * n_matched)]]
    turns += [t for t in added if t is not None]
    disagreements = sum(t is None for t in first + added)
    if family_negatives:
        turns, dropped = _with_family_negatives(turns, queries, specs, family_negatives, rng)
        disagreements += dropped
    if max_examples is not None:
        positives, negatives = [t for t in turns if t.matched], [t for t in turns if not t.matched]
        rng.shuffle(positives)
        rng.shuffle(negatives)
        turns = positives[: (max_examples + 1) // 2] + negatives[: max_examples // 2]
    if logs is not None:
        turns = [_read_log(t, specs[t.shown], logs(t.shown)) for t in track(turns, "reading the event logs")]
    hqr = set(rng.sample(range(len(turns)), round(hqr_fraction * len(turns))))
    examples = [_example(t, "hqr" if i in hqr else "sqr") for i, t in enumerate(turns)]
    rng.shuffle(examples)
    n_pos = sum(e.matched for e in examples)
    stats = SFTStats(queries=len(queries), top1_correct=sum(q.ranking[0] == q.gt_video_id for q in queries),
                     matched=n_pos, not_matched=len(examples) - n_pos, hqr=len(hqr), disagreements=disagreements,
                     family_negatives=sum(not e.matched and _same_family(specs, e.video_id, e.gt_video_id)
                                          for e in examples))
    if disagreements:
        logger.warning("%d turns dropped: the reasoning contradicted the ground truth", disagreements)
    return examples, stats


def _with_family_negatives(turns: list[_Turn], queries: list[_Query], specs: Mapping[str, VideoSpec], share: float,
                           rng: random.Random) -> tuple[list[_Turn], int]:
    """`turns` with `share` of the not-matched ones replaced by family negatives, one a query (the count of each
    class is kept), and how many candidates were dropped because the reasoning contradicted the ground truth."""
    negatives = [t for t in turns if not t.matched]
    candidates = []
    for query in queries:
        video = next((v for v in query.ranking if _same_family(specs, v, query.gt_video_id)), None)
        candidates += [(query, video)] if video else []
    rng.shuffle(candidates)
    wanted = round(share * len(negatives))
    family: list[_Turn] = []
    dropped = 0
    for query, video in candidates:
        if len(family) == wanted:
            break
        turn = _judge(query, video, specs)
        if turn is None:
            dropped += 1
        else:
            family.append(turn)
    taken = {t.query.qid for t in family}
    rest = [t for t in negatives if t.query.qid not in taken]
    rng.shuffle(rest)
    return [t for t in turns if t.matched] + family + rest[:len(negatives) - len(family)], dropped


def _same_family(specs: Mapping[str, VideoSpec], video_id: str, gt_video_id: str) -> bool:
    """A video other than the ground truth made from the same base video (one thing changed)."""
    video, truth = specs.get(video_id), specs.get(gt_video_id)
    return (video_id != gt_video_id and video is not None and truth is not None and bool(truth.family)
            and video.family == truth.family)


def _world_queries(path: Path, ranked: Mapping[str, Sequence[str]]) -> list[_Query]:
    """The queries of a world split with their claims and rankings; `read_moments` validates the lines."""
    moments = read_moments(path).moments
    claims: dict[str, Claim] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("claim"), dict):
            raise AnnotationError(path, number, "no 'claim' object: SFT data needs a synthetic world's annotations "
                                                "(`videosearch world generate`)")
        try:
            claims[str(row["desc_id"])] = Claim.from_dict(row["claim"])
        except (KeyError, TypeError) as err:
            raise AnnotationError(path, number, f"malformed 'claim' ({err})") from err
    queries = []
    for m in moments:
        if not ranked.get(m.qid):
            raise VideosearchError(f"query {m.qid} of {path} has no ranking: rank every query of the file")
        queries.append(_Query(m.qid, m.query, m.video_id, claims[m.qid], tuple(ranked[m.qid])))
    return queries


def _judge(query: _Query, shown: str, specs: Mapping[str, VideoSpec]) -> _Turn | None:
    """The turn for showing `shown`; None when the reasoning disagrees with the ground truth."""
    for vid in (shown, query.gt_video_id):
        if vid not in specs:
            raise VideosearchError(f"video {vid!r} (for query {query.qid}) has no spec in this split: build the "
                                   "index over the same split's videos (`videosearch index build --videos "
                                   "<world>/videos/<split>`)")
    matched, think, span_s = verification_reasoning(query.claim, specs[shown])
    if matched != (shown == query.gt_video_id):
        return None
    return _Turn(query, shown, matched, think, span_s)


def _read_log(turn: _Turn, spec: VideoSpec, log: tuple[str, list[LogEntry]]) -> _Turn:
    """The turn with its reasoning (and a match's span) taken from the shown video's event log."""
    _, think, span_s = verification_reasoning(turn.query.claim, spec, log)
    return replace(turn, think=think, span_s=span_s)


def _example(turn: _Turn, mode: str) -> SFTExample:
    rewrite = rewrite_query(turn.query.claim) if mode == "hqr" else None
    return SFTExample(qid=turn.query.qid, query=turn.query.query, video_id=turn.shown,
                      gt_video_id=turn.query.gt_video_id, matched=turn.matched, span_s=turn.span_s,
                      target=format_output(turn.think, turn.matched, turn.span_s, rewrite), mode=mode)


# ---- the JSONL file ---------------------------------------------------------------------------------------------
def check_sft_output(path: str | os.PathLike[str]) -> None:
    """Allow writing `path` only if it is missing, empty or a file of SFT examples: never replace a user's file.

    Raises:
        FolderInUseError: `path` is a folder, or a file that is not one `write_sft_examples` wrote.
    """
    path = Path(path)
    if path.is_dir():
        raise FolderInUseError(f"{path} is a folder: give --out a file name, e.g. {path / 'sft.jsonl'}")
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        read_sft_examples(path)
    except AnnotationError as err:
        raise FolderInUseError(f"refusing to replace {path}: it is not a file of SFT examples ({err}); "
                               "choose a new file") from None


def write_sft_examples(path: str | os.PathLike[str], examples: Iterable[SFTExample]) -> None:
    """Write one JSON object per example, atomically (`videosearch.atomic.write_text_atomic`).

    An existing `path` is replaced only if it holds SFT examples (see `check_sft_output`).
    """
    path = Path(path)
    check_sft_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(asdict(example), ensure_ascii=False, allow_nan=False) + "\n" for example in examples)
    write_text_atomic(path, "".join(lines))


def read_sft_examples(path: str | os.PathLike[str]) -> list[SFTExample]:
    """Read a file of `write_sft_examples`.

    Raises:
        AnnotationError: the file is missing, or a line is not valid JSON, lacks a field, has a field of the
            wrong type, a mode other than sqr/hqr, or a bad span (`file:line: what is wrong`).
    """
    path = Path(path)
    examples = []
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            examples.append(_example_from_dict(json.loads(line)))
        except json.JSONDecodeError as err:
            raise AnnotationError(path, number, f"invalid JSON ({err.msg}, column {err.colno})") from err
        except ValueError as err:
            raise AnnotationError(path, number, str(err)) from err
    return examples


def _example_from_dict(record: Any) -> SFTExample:
    """Validate one JSON object; raises ValueError naming the field."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    text = {name: _typed(record, name, str) for name in ("qid", "query", "video_id", "gt_video_id", "target")}
    matched = _typed(record, "matched", bool)
    mode = _typed(record, "mode", str)
    if mode not in MODES:
        raise ValueError(f"field 'mode' must be one of {', '.join(MODES)}, got {mode!r}")
    if "span_s" not in record:
        raise ValueError("missing field 'span_s'")
    span_s = _span(record["span_s"])
    if span_s is not None and not matched:
        raise ValueError("a not-matched example has a span; set 'span_s' to null")
    seen = record.get("seen", [])
    if not isinstance(seen, list) or not all(isinstance(v, str) for v in seen):
        raise ValueError(f"field 'seen' must be a list of video ids, got {_short(seen)}")
    return SFTExample(**text, matched=matched, span_s=span_s, mode=mode, seen=tuple(seen))


def _typed(record: dict[str, Any], name: str, kind: type) -> Any:
    if name not in record:
        raise ValueError(f"missing field '{name}'")
    value = record[name]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"field '{name}' must be a {kind.__name__}, got {_short(value)}")
    return value


def _span(value: Any) -> tuple[float, float] | None:
    """null, or [start_s, end_s]: two finite numbers with start <= end."""
    if value is None:
        return None
    two_numbers = isinstance(value, list) and len(value) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)
    if not two_numbers or value[0] > value[1]:
        raise ValueError(f"field 'span_s' must be null or [start, end] seconds with start <= end, got {_short(value)}")
    return float(value[0]), float(value[1])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise AnnotationError(path, None, "no such file; check the path") from err
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(path, None, f"cannot read the file ({err})") from err


# ---- the reference release's SFT files --------------------------------------------------------------------------
def read_reference_sft(path: str | os.PathLike[str]) -> list[SFTExample]:
    """Read a one-turn SFT file of the reference release (`sft_data/train_oneturn.json`) as SFT examples.

    A record holds `qid`, `messages` (system; user `Query: "..."` + the video placeholder; assistant, the
    target), `videos` (one file name, e.g. `<video_id>.npy`) and optionally `meta` with `query_pos_video_id`
    (the ground truth). The file is a JSON list (their format; errors name the 1-based record number) or
    one record per line (errors name the line). All examples are in SQR mode; `gt_video_id` is "" when a
    not-matched record does not name the ground truth.

    Raises:
        AnnotationError: the file is missing, not JSON, or a record is malformed.
    """
    path = Path(path)
    examples = []
    for number, record in _reference_records(path, _read_text(path)):
        try:
            examples.append(_reference_example(record, number))
        except ValueError as err:
            raise AnnotationError(path, number, str(err)) from err
    return examples


def _reference_records(path: Path, text: str) -> list[tuple[int, Any]]:
    """(record number, record) of a JSON list, or (line number, record) of a JSONL file."""
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as err:
            raise AnnotationError(path, err.lineno, f"invalid JSON ({err.msg}, column {err.colno})") from err
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            raise AnnotationError(path, number, f"invalid JSON ({err.msg}, column {err.colno})") from err
    return records


def _reference_example(record: Any, number: int) -> SFTExample:
    """One reference record -> SFTExample; raises ValueError naming what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    user, assistant = _message(record, "user"), _message(record, "assistant")
    query = _QUERY_IN_USER.search(user)
    if query is None or not query.group(1).strip():
        raise ValueError(f"the user message has no 'Query: \"...\"': {_short(user)}")
    videos = record.get("videos")
    if not isinstance(videos, list) or len(videos) != 1 or not isinstance(videos[0], str) or not videos[0].strip():
        raise ValueError(f"field 'videos' must list one video file name (a one-turn record), got {_short(videos)}")
    parsed = parse_output(assistant)
    if parsed.answer == "unparsable":
        raise ValueError(f"the assistant message has no <answer>matched|not_matched</answer>: {_short(assistant)}")
    matched = parsed.answer == "matched"
    video_id = Path(videos[0].strip()).stem
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"field 'meta' must be an object, got {_short(meta)}")
    gt_video_id = str(meta.get("query_pos_video_id") or "").strip() or (video_id if matched else "")
    qid = record.get("qid", number)
    if isinstance(qid, bool) or not isinstance(qid, (int, str)) or str(qid).strip() == "":
        raise ValueError(f"field 'qid' must be a non-empty string or an int, got {_short(qid)}")
    return SFTExample(qid=str(qid).strip(), query=query.group(1).strip(), video_id=video_id,
                      gt_video_id=gt_video_id, matched=matched, span_s=parsed.span_s, target=assistant, mode="sqr")


def _message(record: dict[str, Any], role: str) -> str:
    """The content of the record's one message of `role`."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("field 'messages' must be a list of {role, content} objects")
    contents = [m.get("content") for m in messages if m.get("role") == role]
    if len(contents) != 1 or not isinstance(contents[0], str):
        raise ValueError(f"expected one '{role}' message with text content, found {len(contents)}")
    return contents[0]
